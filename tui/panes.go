package tui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/table"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

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
		case c.Final:
			l = h.st.Error.Render("✗ " + n + ": " + errText(c.Err) + " (not watched)")
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
// selected request selected as new rows arrive above it. It draws its own
// rows (bubbles' table styles cells, not rows): each row is coloured by
// its status, the cursor's reversed, and only the rows on screen are
// rendered.
type requestsPane struct {
	st        Styles
	keys      table.KeyMap
	cols      []table.Column
	rows      []*request
	cursor    int // index in rows of the selected request
	offset    int // index in rows of the first row on screen
	width     int
	height    int // rows on screen, under the titles and their rule
	multiNode bool
}

func newRequestsPane(st Styles) requestsPane {
	return requestsPane{st: st, keys: table.DefaultKeyMap()}
}

// layout sizes the table to width columns and height lines, the titles
// and their rule included.
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
	p.cols, p.width, p.height = fixed, width, max(height, 3)-2
	p.moveTo(p.cursor)
}

// minPath is the narrowest PATH column worth showing.
const minPath = 8

// shedOrder is what a narrow terminal gives up first: the path (the
// detail pane shows it whole), then what the instance implies; the
// status and latency columns go last.
var shedOrder = []string{"PATH", "MODE", "SOURCE", "METHOD", "TIME", "NODE"}

// fitColumns gives PATH what width leaves, and on a terminal too narrow
// for every column hides columns in shedOrder (width 0: not drawn)
// until the rest fit.
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
	var sel *request
	if p.cursor > 0 {
		sel = p.selected()
	}
	p.show(rs, sel)
}

// show replaces the rows, keeping sel selected and on the same line of
// the screen when it is still among them.
func (p *requestsPane) show(rs []*request, sel *request) {
	p.rows = rs
	if sel != nil {
		if i := slices.Index(rs, sel); i >= 0 {
			p.offset += i - p.cursor
			p.moveTo(i)
			return
		}
	}
	p.moveTo(p.cursor)
}

// moveTo puts the cursor on row i (clamped) and scrolls it into view.
func (p *requestsPane) moveTo(i int) {
	p.cursor = max(min(i, len(p.rows)-1), 0)
	if p.cursor >= p.offset+p.height {
		p.offset = p.cursor - p.height + 1
	}
	p.offset = max(min(p.offset, p.cursor, len(p.rows)-p.height), 0)
}

// update moves the cursor for the navigation keys bubbles' table has.
func (p *requestsPane) update(msg tea.KeyPressMsg) {
	k := p.keys
	switch {
	case key.Matches(msg, k.LineUp):
		p.moveTo(p.cursor - 1)
	case key.Matches(msg, k.LineDown):
		p.moveTo(p.cursor + 1)
	case key.Matches(msg, k.PageUp):
		p.moveTo(p.cursor - p.height)
	case key.Matches(msg, k.PageDown):
		p.moveTo(p.cursor + p.height)
	case key.Matches(msg, k.HalfPageUp):
		p.moveTo(p.cursor - p.height/2)
	case key.Matches(msg, k.HalfPageDown):
		p.moveTo(p.cursor + p.height/2)
	case key.Matches(msg, k.GotoTop):
		p.moveTo(0)
	case key.Matches(msg, k.GotoBottom):
		p.moveTo(len(p.rows) - 1)
	}
}

// view draws the titles, a rule, and the rows on screen, each in its
// status's colour; the cursor's row is reversed. Cells are cut to their
// column by display width, so colour never counts as width.
func (p requestsPane) view() string {
	titles := make(table.Row, len(p.cols))
	for i, c := range p.cols {
		titles[i] = c.Title
	}
	head := p.line(titles)
	lines := []string{p.st.Header.Render(head), p.st.Rule.Render(strings.Repeat("─", ansi.StringWidth(head)))}
	for i := p.offset; i < min(p.offset+p.height, len(p.rows)); i++ {
		r := p.rows[i]
		s := p.st.Status(r.status(), r.failed(), false)
		if i == p.cursor {
			s = s.Inherit(p.st.Selected)
		}
		lines = append(lines, s.Render(p.line(p.row(r))))
	}
	for len(lines) < p.height+2 {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// line lays cells out in the visible columns, each cut or padded to its
// width with a space either side.
func (p requestsPane) line(cells table.Row) string {
	var b strings.Builder
	for i, c := range p.cols {
		if c.Width <= 0 || i >= len(cells) {
			continue
		}
		v := ansi.Truncate(cells[i], c.Width, "…")
		b.WriteString(" " + v + strings.Repeat(" ", c.Width-ansi.StringWidth(v)) + " ")
	}
	return b.String()
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
	if p.cursor < 0 || p.cursor >= len(p.rows) {
		return nil
	}
	return p.rows[p.cursor]
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
