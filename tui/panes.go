package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/table"
	"github.com/charmbracelet/lipgloss"

	"github.com/mdctl/mdctl/server/events"
)

// header shows the rates and each node's connection.
type header struct {
	st      Styles
	nodes   []string // in the order given
	conn    map[string]ConnMsg
	notice  map[string]time.Time // when a node reconnected
	paused  bool
	pending int // events that came while paused
	filter  string
}

func (h header) view(width int, s stats, now time.Time) string {
	title := h.st.Title.Render("mdctl live")
	line := fmt.Sprintf("%s  %s req/s  %s 4xx  %s 5xx  %s errors  p99 %s  (last 10s)", title,
		h.st.Stat.Render(strconv.FormatFloat(s.rate, 'f', 1, 64)),
		h.st.Warn.Render(strconv.Itoa(s.n4xx)), h.st.Error.Render(strconv.Itoa(s.n5xx)),
		h.st.Stat.Render(strconv.FormatFloat(100*s.errRate, 'f', 1, 64)+"%"),
		h.st.Stat.Render(fmtDur(s.p99)))
	if h.paused {
		line += "  " + h.st.Paused.Render(fmt.Sprintf(" PAUSED (%d new) ", h.pending))
	}
	if h.filter != "" {
		line += "  filter: " + h.st.Warn.Render(h.filter)
	}
	lines := []string{line}
	for _, n := range h.nodes {
		c, seen := h.conn[n]
		var l string
		switch {
		case !seen:
			l = h.st.Dim.Render("… connecting to " + n)
		case c.Up && now.Sub(h.notice[n]) < 5*time.Second:
			l = h.st.OK.Render("● reconnected to " + n + " (serve restarted)")
		case c.Up:
			l = h.st.OK.Render("● " + n)
		default:
			l = h.st.Error.Render("✗ lost " + n + ": " + errText(c.Err) + "; reconnecting…")
		}
		lines = append(lines, l)
	}
	return lipgloss.NewStyle().MaxWidth(width).Render(strings.Join(lines, "\n"))
}

func errText(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

// requestsPane is the table of requests, newest first; it keeps the
// selected request selected as new rows arrive above it.
type requestsPane struct {
	t         table.Model
	rows      []*request
	multiNode bool
}

func newRequestsPane(st Styles) requestsPane {
	t := table.New(table.WithFocused(true), table.WithStyles(st.Table))
	return requestsPane{t: t}
}

func (p *requestsPane) layout(width, height int, multiNode bool) {
	p.multiNode = multiNode
	fixed := []table.Column{
		{Title: "TIME", Width: 8}, {Title: "INSTANCE", Width: 14}, {Title: "SOURCE", Width: 15},
		{Title: "MODE", Width: 6}, {Title: "METHOD", Width: 6}, {Title: "PATH", Width: 0},
		{Title: "STATUS", Width: 6}, {Title: "TOTAL", Width: 8}, {Title: "PROXY", Width: 8},
		{Title: "AGENT", Width: 8}, {Title: "API", Width: 8},
	}
	if multiNode {
		fixed = append([]table.Column{{Title: "NODE", Width: 12}}, fixed...)
	}
	fitColumns(fixed, width)
	sel := p.selected()
	p.t.SetRows(nil) // columns and rows must agree while they change
	p.t.SetColumns(fixed)
	p.t.SetWidth(width)
	p.t.SetHeight(max(height, 3))
	p.show(p.rows, sel)
}

// minPath is the narrowest PATH column worth showing.
const minPath = 8

// shedOrder is what a narrow terminal gives up first: the path (the
// detail pane shows it whole), then what the instance implies; the
// status and latency columns go last.
var shedOrder = []string{"PATH", "MODE", "SOURCE", "METHOD", "TIME", "NODE"}

// fitColumns gives PATH what width leaves, and on a terminal too narrow
// for every column hides columns in shedOrder (width 0: the table skips
// them) until the rest fit.
func fitColumns(cols []table.Column, width int) {
	used := 2
	for _, c := range cols {
		if c.Title != "PATH" {
			used += c.Width + 2 // cell padding
		}
	}
	path := width - used - 2 // PATH's own padding
	at := func(title string) *table.Column {
		for i := range cols {
			if cols[i].Title == title {
				return &cols[i]
			}
		}
		return nil
	}
	if path >= minPath {
		at("PATH").Width = path
		return
	}
	at("PATH").Width = 0
	free := path + 2
	for _, title := range shedOrder[1:] {
		if free >= 0 {
			return
		}
		if c := at(title); c != nil {
			free += c.Width + 2
			c.Width = 0
		}
	}
}

// set shows rs. At the head (the newest row) the cursor follows new rows,
// as less +F does; moved down, it stays on the request it was on until it
// is moved back to the head (g, home).
func (p *requestsPane) set(rs []*request) {
	if p.t.Cursor() <= 0 {
		p.show(rs, nil)
		p.t.SetCursor(0)
		return
	}
	p.show(rs, p.selected())
}

func (p *requestsPane) show(rs []*request, sel *request) {
	p.rows = rs
	rows := make([]table.Row, len(rs))
	for i, r := range rs {
		rows[i] = p.row(r)
	}
	p.t.SetRows(rows)
	if sel != nil {
		if i := slices.Index(rs, sel); i >= 0 {
			p.t.SetCursor(i)
			return
		}
	}
	if c := p.t.Cursor(); c < 0 || c >= len(rs) {
		p.t.SetCursor(max(min(c, len(rs)-1), 0))
	}
}

func (p *requestsPane) row(r *request) table.Row {
	out := r.outer()
	dur := func(hop string) string {
		if e, ok := r.Hops[hop]; ok {
			return fmtDur(e.Duration)
		}
		return "-"
	}
	path := out.Path
	for _, e := range r.Hops {
		if e.Probe {
			path = "[trace probe] " + path // trace's own request, not the guest's
			break
		}
	}
	row := table.Row{
		r.First.Local().Format("15:04:05"), orDash(r.instance()), orDash(r.pick(func(e events.Event) string { return e.SourceIP })),
		orDash(r.pick(func(e events.Event) string { return e.Mode })), out.Method, path,
		strconv.Itoa(r.status()), fmtDur(r.total()), dur(events.HopProxy), dur(events.HopAgent), dur(events.HopAPI),
	}
	if p.multiNode {
		row = append(table.Row{r.Node}, row...)
	}
	return row
}

func (p *requestsPane) selected() *request {
	if len(p.rows) == 0 {
		return nil
	}
	i := p.t.Cursor()
	if i < 0 || i >= len(p.rows) {
		return nil
	}
	return p.rows[i]
}

// detailPane shows one request's hops and the last trace of its instance.
type detailPane struct {
	st Styles
}

func (d detailPane) view(r *request, tr *TraceResult, tracing string, width int) string {
	if r == nil {
		return d.st.Pane.Width(max(width-2, 10)).Render(d.st.Dim.Render("no request selected"))
	}
	label := func(k, v string) string { return d.st.Label.Render(k) + v }
	lines := []string{
		d.st.PaneTitle.Render("request " + r.ID),
		label("instance", orDash(r.instance())+"  "+d.st.Dim.Render(r.pick(func(e events.Event) string { return e.InstanceID }))),
		label("source", orDash(r.pick(func(e events.Event) string { return e.SourceIP }))+"  mode "+orDash(r.pick(func(e events.Event) string { return e.Mode }))+
			"  namespace "+orDash(r.pick(func(e events.Event) string { return e.Namespace }))+"  node "+r.Node),
		"",
	}
	for _, h := range events.Hops {
		e, ok := r.Hops[h]
		if !ok {
			lines = append(lines, label(h, d.st.Dim.Render("no event (not on this path, or on a node not watched)")))
			continue
		}
		st := strconv.Itoa(e.Status)
		if e.Failed() {
			st = d.st.Error.Render(st)
		}
		l := fmt.Sprintf("%s %s → %s  %s  %d bytes", e.Method, e.Path, st, fmtDur(e.Duration), e.Bytes)
		if e.Error != "" {
			l += "  " + d.st.Error.Render(e.Error)
		}
		lines = append(lines, label(h, l))
	}
	switch {
	case tracing != "":
		lines = append(lines, "", d.st.Warn.Render("tracing "+tracing+"…"))
	case tr != nil:
		lines = append(lines, "", tr.view(d.st))
	}
	return d.st.Pane.Width(max(width-2, 10)).Render(strings.Join(lines, "\n"))
}

func (tr TraceResult) view(st Styles) string {
	var head string
	switch {
	case tr.Err != nil:
		head = st.Error.Render("trace " + tr.Instance + " failed to run: " + tr.Err.Error())
	case tr.OK:
		head = st.OK.Render("trace " + tr.Instance + ": every hop passes")
	default:
		head = st.Error.Render("trace " + tr.Instance + ": fails at " + tr.FailedHop)
	}
	return strings.Join(append([]string{head}, tr.Lines...), "\n")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fmtDur prints a latency in at most 6 characters.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return strconv.FormatInt(d.Microseconds(), 10) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
}
