package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
)

// instStats is one instance's row of the per-instance view.
type instStats struct {
	name       string
	rate       float64 // req/s over the window
	n4xx, n5xx int     // in the window
	p99        time.Duration
	lastStatus int
	lastSeen   time.Time
}

// perInstance sums the log by instance: counts and p99 over window, last
// status and last seen over everything the log holds, so a guest that
// has gone silent keeps its row with an old last seen. Sorted by name.
func (l *requestLog) perInstance(now time.Time, window time.Duration) []instStats {
	by := map[string]*instStats{}
	lat := map[string][]time.Duration{}
	for _, r := range l.order {
		name := r.instance()
		if name == "" {
			continue
		}
		s := by[name]
		if s == nil {
			s = &instStats{name: name}
			by[name] = s
		}
		if !r.First.Before(s.lastSeen) {
			s.lastSeen, s.lastStatus = r.First, r.status()
		}
		if now.Sub(r.First) > window {
			continue
		}
		lat[name] = append(lat[name], r.total())
		switch r.status() / 100 {
		case 4:
			s.n4xx++
		case 5:
			s.n5xx++
		}
	}
	out := make([]instStats, 0, len(by))
	for name, s := range by {
		if ls := lat[name]; len(ls) > 0 {
			slices.Sort(ls)
			s.p99 = ls[(len(ls)*99+99)/100-1]
			s.rate = float64(len(ls)) / window.Seconds()
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b instStats) int { return strings.Compare(a.name, b.name) })
	return out
}

// instancesView is the per-instance view (key i): one line per instance,
// coloured by its last status; an instance not seen in the window is
// marked silent.
func instancesView(st Styles, rows []instStats, now time.Time, window time.Duration, width, height int) string {
	const format = "%-20s %7s %5s %5s %8s %6s  %s"
	lines := []string{st.PaneTitle.Render(fmt.Sprintf(format, "INSTANCE", "REQ/S", "4XX", "5XX", "P99", "LAST", "LAST SEEN"))}
	if len(rows) == 0 {
		lines = append(lines, st.Dim.Render("no instance seen yet"))
	}
	for _, r := range rows {
		ago := now.Sub(r.lastSeen).Round(time.Second)
		seen := ago.String() + " ago"
		if ago > window {
			seen = "SILENT for " + ago.String()
		}
		l := fmt.Sprintf(format, r.name, strconv.FormatFloat(r.rate, 'f', 1, 64), strconv.Itoa(r.n4xx), strconv.Itoa(r.n5xx),
			fmtDur(r.p99), strconv.Itoa(r.lastStatus), seen)
		lines = append(lines, st.Status(r.lastStatus, false, ago > window).Render(l))
	}
	if len(lines) > height {
		lines = lines[:max(height, 1)]
	}
	return lipgloss.NewStyle().MaxWidth(width).Render(strings.Join(lines, "\n"))
}
