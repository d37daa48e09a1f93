// Package tui is `mdctl tui`: a live table of the requests serve's hops
// report, joined by request id across proxy, agent and API, with rates,
// filters, a detail pane and the tracer one key away.
//
// It owns the screen and the joining of events into requests. It reads
// serve only through the admin endpoint (server/admin's client) and must
// never touch the store, the kernel or a guest.
package tui

import (
	"context"
	"io"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"

	"github.com/mdctl/mdctl/server/events"
)

// Window is how far back the header's numbers look.
const Window = 10 * time.Second

// TraceResult is what `t` shows: the tracer's verdict on an instance.
type TraceResult struct {
	Instance  string
	OK        bool
	FailedHop string
	Lines     []string // one per hop, as the tracer words them
	Err       error    // the tracer could not run
}

// TraceFunc runs the tracer on an instance (name or id).
type TraceFunc func(ctx context.Context, instance string) TraceResult

// Options configure the model.
type Options struct {
	// Nodes are the admin endpoints watched, as shown in the header.
	Nodes []string
	// Msgs carries EventMsg and ConnMsg from the watchers; nil in tests
	// that send messages themselves.
	Msgs <-chan tea.Msg
	// Trace runs on `t`; nil says tracing is not available.
	Trace TraceFunc
	// Now is the clock for the header's window; nil means time.Now.
	Now func() time.Time
	// Styles; NewStyles(color) usually.
	Styles Styles
	// MaxRequests bounds the memory of requests; default 5000.
	MaxRequests int
}

// Model is the parent: it owns the request log and composes the panes.
type Model struct {
	o       Options
	keys    keyMap
	st      Styles
	log     *requestLog
	head    header
	table   requestsPane
	detail  detailPane
	input   textinput.Model
	help    help.Model
	filter  filter
	width   int
	height  int
	dirty   bool
	showDet bool
	// showInst: the per-instance view replaces the requests table.
	showInst bool
	editing  bool
	errMsg   string
	traces   map[string]TraceResult
	tracing  string
}

type tickMsg time.Time

type traceMsg TraceResult

// refreshEvery is how often new events reach the table: redrawing per
// event would cost more than a boot storm is worth watching.
const refreshEvery = 200 * time.Millisecond

// New returns the model.
func New(o Options) Model {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxRequests <= 0 {
		o.MaxRequests = 5000
	}
	in := textinput.New()
	in.Prompt = "/ "
	in.Placeholder = "instance=vm1 path=/openstack status=404|5xx|error, or words"
	in.SetStyles(o.Styles.Input)
	hl := help.New()
	hl.Styles = o.Styles.Help
	m := Model{
		o: o, keys: newKeyMap(), st: o.Styles, log: newRequestLog(o.MaxRequests),
		head:   header{st: o.Styles, nodes: o.Nodes, conn: map[string]ConnMsg{}, notice: map[string]time.Time{}},
		table:  newRequestsPane(o.Styles),
		detail: detailPane{st: o.Styles},
		input:  in, help: hl, traces: map[string]TraceResult{},
		width: 120, height: 30,
	}
	m.layout()
	return m
}

// Init starts listening to the watchers and the refresh tick.
func (m Model) Init() tea.Cmd {
	return tea.Batch(listen(m.o.Msgs), tick())
}

func tick() tea.Cmd {
	return tea.Tick(refreshEvery, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// Update handles one message.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case EventMsg:
		m.log.add(msg.Node, msg.Event)
		if m.head.paused {
			m.head.pending++
		} else {
			m.dirty = true
		}
		return m, listen(m.o.Msgs)
	case ConnMsg:
		if msg.Up && msg.Reconnected {
			m.head.notice[msg.Node] = m.o.Now()
		}
		m.head.conn[msg.Node] = msg
		return m, listen(m.o.Msgs)
	case tickMsg:
		m.refresh()
		return m, tick()
	case traceMsg:
		m.traces[msg.Instance] = TraceResult(msg)
		m.tracing = ""
		m.showDet = true
		m.layout()
		return m, nil
	case tea.KeyPressMsg:
		if m.editing {
			return m.updateFilter(msg)
		}
		return m.updateKeys(msg)
	}
	if m.editing {
		// What else the filter line takes: a paste (v2 sends it apart from
		// key presses) and its cursor's blinks.
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		return m, cmd
	}
	return m, nil
}

// refresh moves what the log holds into the table, unless paused.
func (m *Model) refresh() {
	if m.dirty && !m.head.paused {
		m.table.set(m.log.newestFirst(m.filter))
		m.dirty = false
	}
}

func (m Model) updateKeys(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	m.errMsg = ""
	switch {
	case key.Matches(msg, m.keys.Quit):
		return m, tea.Quit
	case key.Matches(msg, m.keys.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.layout()
	case key.Matches(msg, m.keys.Filter):
		m.editing = true
		m.input.SetValue(m.filter.text)
		m.input.CursorEnd()
		m.layout()
		return m, m.input.Focus()
	case key.Matches(msg, m.keys.Pause):
		m.head.paused = !m.head.paused
		if !m.head.paused {
			m.head.pending = 0
			m.dirty = true
			m.refresh()
		}
	case key.Matches(msg, m.keys.Detail):
		m.showDet = !m.showDet
		m.layout()
	case key.Matches(msg, m.keys.Close):
		m.showDet = false
		m.layout()
	case key.Matches(msg, m.keys.Trace):
		return m.startTrace()
	case key.Matches(msg, m.keys.Instances):
		m.showInst = !m.showInst
	default:
		m.table.update(msg)
	}
	return m, nil
}

func (m Model) updateFilter(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch msg.Code {
	case tea.KeyEnter:
		f, err := parseFilter(m.input.Value())
		if err != nil {
			m.errMsg = err.Error()
			return m, nil
		}
		m.filter, m.head.filter, m.errMsg = f, f.text, ""
		m.editing = false
		m.input.Blur()
		m.dirty = true
		m.refresh()
		m.layout()
		return m, nil
	case tea.KeyEscape:
		m.editing, m.errMsg = false, ""
		m.input.Blur()
		m.layout()
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m Model) startTrace() (tea.Model, tea.Cmd) {
	r := m.table.selected()
	switch {
	case r == nil:
		m.errMsg = "no request selected to trace"
		return m, nil
	case m.o.Trace == nil:
		m.errMsg = "tracing is not available here"
		return m, nil
	case m.tracing != "":
		return m, nil
	}
	inst := r.pick(func(e events.Event) string { return e.InstanceID })
	if inst == "" {
		inst = r.instance()
	}
	if inst == "" {
		m.errMsg = "this request reached no instance: nothing to trace (see its hops with enter)"
		return m, nil
	}
	m.tracing, m.showDet = inst, true
	m.layout()
	trace := m.o.Trace
	return m, func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		tr := trace(ctx, inst)
		tr.Instance = inst
		return traceMsg(tr)
	}
}

// layout sizes the panes to the window.
func (m *Model) layout() {
	headH := 1 + len(m.o.Nodes)
	footH := lipgloss.Height(m.footer())
	detH := 0
	if m.showDet {
		detH = lipgloss.Height(m.detailView())
	}
	m.table.layout(m.width, m.height-headH-footH-detH, len(m.o.Nodes) > 1)
	m.input.SetWidth(max(m.width-4, 10))
	m.help.SetWidth(m.width)
}

func (m Model) detailView() string {
	r := m.table.selected()
	var tr *TraceResult
	if r != nil {
		id := r.pick(func(e events.Event) string { return e.InstanceID })
		if t, ok := m.traces[id]; ok {
			tr = &t
		} else if t, ok := m.traces[r.instance()]; ok {
			tr = &t
		}
	}
	return m.detail.view(r, tr, m.tracing, m.width)
}

func (m Model) footer() string {
	var parts []string
	if m.editing {
		parts = append(parts, m.input.View())
	}
	if m.errMsg != "" {
		parts = append(parts, m.st.Error.Render(m.errMsg))
	}
	parts = append(parts, m.help.View(m.keys))
	return strings.Join(parts, "\n")
}

// View draws the screen, full-window.
func (m Model) View() tea.View {
	v := tea.NewView(m.screen())
	v.AltScreen = true
	return v
}

func (m Model) screen() string {
	s := m.log.stats(m.o.Now(), Window)
	body := m.table.view()
	if m.showInst {
		body = instancesView(m.st, m.log.perInstance(m.o.Now(), Window), m.o.Now(), Window, m.width, lipgloss.Height(body))
	}
	out := []string{m.head.view(m.width, s, m.o.Now()), body}
	if m.showDet {
		out = append(out, m.detailView())
	}
	out = append(out, m.footer())
	return lipgloss.NewStyle().MaxWidth(m.width).MaxHeight(m.height).Render(strings.Join(out, "\n"))
}

// Run shows the live view of every source on out, their events merged and
// each row labelled with its node, until the user quits or ctx ends.
func Run(ctx context.Context, srcs []Source, trace TraceFunc, in io.Reader, out io.Writer, color bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan tea.Msg, 1024)
	for _, s := range srcs {
		go Watch(ctx, s, ch)
	}
	m := New(Options{Nodes: Labels(srcs), Msgs: ch, Trace: trace, Styles: NewStyles(color)})
	opts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out)}
	if !color {
		// Bold and reverse only, whatever the terminal says it could do.
		opts = append(opts, tea.WithColorProfile(colorprofile.Ascii))
	}
	p := tea.NewProgram(m, opts...)
	_, err := p.Run()
	if ctx.Err() != nil && err != nil {
		return nil // stopped from outside
	}
	return err
}
