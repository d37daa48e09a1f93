package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/mdctl/mdctl/internal/termtest"
	"github.com/mdctl/mdctl/server/events"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// screenModel is Model as teatest runs it, keeping the last screen the
// program drew: bubbletea v2 writes only the cells that changed, so the
// bytes teatest collects cannot be searched for a line; the screen can.
type screenModel struct {
	Model
	last *atomic.Pointer[string]
}

func (s screenModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	m, cmd := s.Model.Update(msg)
	s.Model = m.(Model)
	return s, cmd
}

func (s screenModel) View() tea.View {
	v := s.Model.View()
	s.last.Store(&v.Content)
	return v
}

// testModel is the model running in a real bubbletea program (teatest's).
type testModel struct {
	*teatest.TestModel
	last *atomic.Pointer[string]
}

// newTest starts o's model on a 180x40 terminal, without colour, at t0
// unless o.Now says otherwise.
func newTest(t *testing.T, o Options) testModel {
	t.Helper()
	if o.Nodes == nil {
		o.Nodes = []string{"node1"}
	}
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	o.Styles = NewStyles(false)
	last := new(atomic.Pointer[string])
	tm := teatest.NewTestModel(t, screenModel{Model: New(o), last: last}, teatest.WithInitialTermSize(180, 40))
	return testModel{TestModel: tm, last: last}
}

// requestEvents are the three events of one request, as serve's hops
// send them.
func requestEvents(rid, inst, path string, status int, at time.Time) []events.Event {
	var out []events.Event
	for i, h := range []string{events.HopAPI, events.HopAgent, events.HopProxy} { // innermost finishes first
		e := events.Event{Time: at.Add(time.Duration(2-i) * time.Millisecond), RequestID: rid, Hop: h, Method: "GET", Path: path,
			Status: status, Duration: time.Duration(i+1) * time.Millisecond, Mode: events.ModeRouter, SourceIP: "10.90.1.5"}
		if h != events.HopProxy {
			e.InstanceID, e.InstanceName = "id-"+inst, inst
		}
		out = append(out, e)
	}
	return out
}

// hops sends the three events of one request.
func hops(tm testModel, rid, inst, path string, status int, at time.Time) {
	for _, e := range requestEvents(rid, inst, path, status, at) {
		tm.Send(EventMsg{Node: "node1", Event: e})
	}
}

// waitFor waits (5 s at most) until the screen's text shows every one of
// subs.
func waitFor(t *testing.T, tm testModel, subs ...string) {
	t.Helper()
	waitScreen(t, tm, fmt.Sprintf("the screen never showed %q", subs), func(screen string) bool { return containsAll(screen, subs) })
}

// waitScreen waits (5 s at most) until ok holds for the screen's text;
// else it fails with failure and the last screen.
func waitScreen(t *testing.T, tm testModel, failure string, ok func(screen string) bool) {
	t.Helper()
	screen := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if p := tm.last.Load(); p != nil {
			screen = ansi.Strip(*p)
		}
		if ok(screen) {
			return
		}
	}
	t.Fatalf("%s; last screen:\n%s", failure, screen)
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func press(r rune) tea.KeyPressMsg { return tea.KeyPressMsg{Code: r, Text: string(r)} }

var (
	enter = tea.KeyPressMsg{Code: tea.KeyEnter}
	esc   = tea.KeyPressMsg{Code: tea.KeyEscape}
	down  = tea.KeyPressMsg{Code: tea.KeyDown}
	space = tea.KeyPressMsg{Code: tea.KeySpace, Text: " "}
)

func final(t *testing.T, tm testModel) Model {
	t.Helper()
	tm.Send(press('q'))
	return tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(screenModel).Model
}

func rowInstances(m Model) []string {
	var out []string
	for _, r := range m.table.rows {
		out = append(out, r.instance())
	}
	return out
}

func TestEventsJoinIntoRequestsNewestFirst(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack/latest/meta_data.json", 200, t0.Add(-2*time.Second))
	hops(tm, "req-2", "vm-b", "/latest/meta-data/", 404, t0.Add(-time.Second))
	waitFor(t, tm, "vm-a", "vm-b", "/latest/meta-data/", "404")
	m := final(t, tm)
	if got := rowInstances(m); strings.Join(got, ",") != "vm-b,vm-a" {
		t.Fatalf("rows %v, want vm-b then vm-a", got)
	}
	row := m.table.row(m.table.rows[1])
	// TIME INSTANCE SOURCE MODE METHOD PATH STATUS TOTAL PROXY AGENT API
	want := []string{"vm-a", "10.90.1.5", "router", "GET", "/openstack/latest/meta_data.json", "200", "3.0ms", "3.0ms", "2.0ms", "1.0ms"}
	if strings.Join(row[1:], "|") != strings.Join(want, "|") {
		t.Errorf("row %v, want %v", row[1:], want)
	}
	s := m.log.stats(t0, Window)
	if s.n != 2 || s.errRate != 0 || s.p99 != 3*time.Millisecond {
		t.Errorf("stats %+v", s)
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		typed string
		want  string
	}{
		{"instance=vm-b", "vm-b"},
		{"status=404", "vm-b"},
		{"status=2xx", "vm-c,vm-a"},
		{"path=/openstack", "vm-c,vm-a"},
		{"vm-c", "vm-c"},
		{"meta-data status=4xx", "vm-b"},
	}
	for _, tt := range tests {
		t.Run(tt.typed, func(t *testing.T) {
			tm := newTest(t, Options{})
			hops(tm, "req-1", "vm-a", "/openstack/latest/meta_data.json", 200, t0.Add(-3*time.Second))
			hops(tm, "req-2", "vm-b", "/latest/meta-data/", 404, t0.Add(-2*time.Second))
			hops(tm, "req-3", "vm-c", "/openstack/latest/user_data", 200, t0.Add(-time.Second))
			waitFor(t, tm, "vm-c")
			tm.Send(press('/'))
			tm.Type(tt.typed)
			tm.Send(enter)
			waitFor(t, tm, "filter: "+tt.typed)
			m := final(t, tm)
			if got := strings.Join(rowInstances(m), ","); got != tt.want {
				t.Errorf("filter %q shows %s, want %s", tt.typed, got, tt.want)
			}
		})
	}
}

// TestFilterPaste: a filter pasted into the filter line (bubbletea v2
// sends a paste as its own message, not as keys) is applied like a typed one.
func TestFilterPaste(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack", 200, t0.Add(-2*time.Second))
	hops(tm, "req-2", "vm-b", "/openstack", 404, t0.Add(-time.Second))
	waitFor(t, tm, "vm-b")
	tm.Send(press('/'))
	tm.Send(tea.PasteMsg{Content: "status=404"})
	tm.Send(enter)
	waitFor(t, tm, "filter: status=404")
	if got := strings.Join(rowInstances(final(t, tm)), ","); got != "vm-b" {
		t.Errorf("pasted filter shows %s, want vm-b", got)
	}
}

func TestBadFilterIsRefused(t *testing.T) {
	tm := newTest(t, Options{})
	tm.Send(press('/'))
	tm.Type("status=abc")
	tm.Send(enter)
	waitFor(t, tm, "status=abc: use a code")
	tm.Send(esc)
	m := final(t, tm)
	if m.editing || m.filter.text != "" {
		t.Errorf("editing=%v filter=%q after esc", m.editing, m.filter.text)
	}
}

func TestPause(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/", 200, t0.Add(-2*time.Second))
	waitFor(t, tm, "vm-a")
	tm.Send(space)
	hops(tm, "req-2", "vm-b", "/", 200, t0.Add(-time.Second))
	waitFor(t, tm, "PAUSED (3 new)") // three hops' events
	// Still paused: the table has not moved.
	tm.Send(space)
	waitFor(t, tm, "vm-b")
	m := final(t, tm)
	if m.head.paused || strings.Join(rowInstances(m), ",") != "vm-b,vm-a" {
		t.Errorf("after unpause: paused=%v rows %v", m.head.paused, rowInstances(m))
	}
}

func TestPausedTableDoesNotMove(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/", 200, t0.Add(-2*time.Second))
	waitFor(t, tm, "vm-a")
	tm.Send(space)
	hops(tm, "req-2", "vm-b", "/", 200, t0.Add(-time.Second))
	waitFor(t, tm, "PAUSED (3 new)")
	m := final(t, tm)
	if got := strings.Join(rowInstances(m), ","); got != "vm-a" {
		t.Errorf("paused table shows %s, want only vm-a", got)
	}
}

func TestDetailPane(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack", 200, t0.Add(-2*time.Second))
	tm.Send(EventMsg{Node: "node1", Event: events.Event{Time: t0.Add(-time.Second), RequestID: "req-2", Hop: events.HopProxy,
		Method: "GET", Path: "/x", Status: 503, Duration: time.Millisecond, Mode: events.ModeDHCP, Namespace: "qdhcp-n1", SourceIP: "10.90.2.9"}})
	waitFor(t, tm, "10.90.2.9")
	tm.Send(enter)
	// The newest (selected) request failed at the proxy: no agent or API event.
	waitFor(t, tm, "request req-2", "GET /x → 503", "no event (not on this path", "mode dhcp  namespace qdhcp-n1")
	tm.Send(down)
	waitFor(t, tm, "request req-1", "id-vm-a")
	tm.Send(esc)
	m := final(t, tm)
	if m.showDet {
		t.Error("detail pane still open after esc")
	}
	if r := m.table.selected(); r == nil || r.ID != "req-1" {
		t.Errorf("selected %+v, want req-1", r)
	}
}

func TestResize(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack/latest/meta_data.json", 200, t0.Add(-time.Second))
	waitFor(t, tm, "vm-a")
	tm.Send(enter)
	tm.Send(tea.WindowSizeMsg{Width: 90, Height: 24})
	waitFor(t, tm, "request req-1")
	m := final(t, tm)
	v := m.screen()
	if h := lipgloss.Height(v); h > 24 {
		t.Errorf("view is %d lines in a 24-line window", h)
	}
	for i, l := range strings.Split(v, "\n") {
		if w := lipgloss.Width(l); w > 90 {
			t.Errorf("line %d is %d wide in a 90-column window: %q", i, w, l)
		}
	}
	if m.table.width != 90 {
		t.Errorf("table width %d", m.table.width)
	}
}

func TestReconnectMessage(t *testing.T) {
	tm := newTest(t, Options{Nodes: []string{"/var/lib/mdctl/admin.sock"}})
	waitFor(t, tm, "connecting to /var/lib/mdctl/admin.sock")
	tm.Send(ConnMsg{Node: "/var/lib/mdctl/admin.sock", Up: true})
	tm.Send(ConnMsg{Node: "/var/lib/mdctl/admin.sock", Err: errors.New("unexpected EOF")})
	waitFor(t, tm, "lost /var/lib/mdctl/admin.sock: unexpected EOF; reconnecting")
	tm.Send(ConnMsg{Node: "/var/lib/mdctl/admin.sock", Up: true, Reconnected: true})
	waitFor(t, tm, "reconnected to /var/lib/mdctl/admin.sock (serve restarted)")
	final(t, tm)
}

func TestTraceKey(t *testing.T) {
	called := make(chan string, 1)
	trace := func(_ context.Context, inst string) TraceResult {
		called <- inst
		return TraceResult{FailedHop: "iptables", Lines: []string{"iptables: no redirect rule for 169.254.169.254:80"}}
	}
	tm := newTest(t, Options{Trace: trace})
	hops(tm, "req-1", "vm-a", "/", 200, t0.Add(-time.Second))
	waitFor(t, tm, "vm-a")
	tm.Send(press('t'))
	waitFor(t, tm, "trace id-vm-a: fails at iptables", "no redirect rule")
	if got := <-called; got != "id-vm-a" {
		t.Errorf("traced %q, want the instance id", got)
	}
	final(t, tm)
}

func TestHelpAndNoTracer(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/", 200, t0.Add(-time.Second))
	waitFor(t, tm, "vm-a")
	tm.Send(press('t'))
	waitFor(t, tm, "tracing is not available")
	tm.Send(press('?'))
	waitFor(t, tm, "trace instance", "details", "close")
	final(t, tm)
}

// TestFollowHead: at the head the cursor follows each newest row, as
// less +F does; moved down, it stays on its request; back at the head
// (g), it follows again.
func TestFollowHead(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack", 200, t0.Add(-3*time.Second))
	waitFor(t, tm, "vm-a")
	hops(tm, "req-2", "vm-b", "/openstack", 200, t0.Add(-2*time.Second))
	waitFor(t, tm, "vm-b")
	tm.Send(enter)
	waitFor(t, tm, "request req-2") // followed the head to the newest
	tm.Send(down)
	waitFor(t, tm, "request req-1")
	hops(tm, "req-3", "vm-c", "/openstack", 200, t0.Add(-time.Second))
	waitFor(t, tm, "vm-c")
	tm.Send(press('g'))
	hops(tm, "req-4", "vm-d", "/openstack", 200, t0.Add(-time.Millisecond))
	waitFor(t, tm, "vm-d", "request req-4")
	m := final(t, tm)
	if r := m.table.selected(); r == nil || r.ID != "req-4" {
		t.Errorf("selected %+v at the head, want the newest req-4", r)
	}
}

// TestHeaderCountsClasses: the header counts 4xx and 5xx apart.
func TestHeaderCountsClasses(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack", 404, t0.Add(-3*time.Second))
	hops(tm, "req-2", "vm-b", "/openstack", 404, t0.Add(-2*time.Second))
	hops(tm, "req-3", "vm-c", "/openstack", 503, t0.Add(-time.Second))
	waitFor(t, tm, "0.3 req/s  2 4xx  1 5xx")
	final(t, tm)
}

// TestNarrowCutsPathFirst: a narrow terminal gives up the path column,
// then the source's, before any status or latency column.
func TestNarrowCutsPathFirst(t *testing.T) {
	tests := []struct {
		width      int
		want, gone []string
	}{
		{180, []string{"PATH", "SOURCE", "STATUS", "API"}, nil},
		{105, []string{"SOURCE", "STATUS", "TOTAL", "API"}, []string{"PATH"}},
		{90, []string{"INSTANCE", "STATUS", "TOTAL", "PROXY", "AGENT", "API"}, []string{"PATH", "SOURCE"}},
	}
	for _, tt := range tests {
		m := New(Options{Nodes: []string{"node1"}, Now: func() time.Time { return t0 }, Styles: NewStyles(false)})
		next, _ := m.Update(tea.WindowSizeMsg{Width: tt.width, Height: 30})
		head := strings.Split(next.(Model).table.view(), "\n")[0]
		for _, w := range tt.want {
			if !strings.Contains(head, w) {
				t.Errorf("%d columns: header %q lacks %s", tt.width, head, w)
			}
		}
		for _, g := range tt.gone {
			if strings.Contains(head, g) {
				t.Errorf("%d columns: header %q still has %s", tt.width, head, g)
			}
		}
		if w := lipgloss.Width(head); w > tt.width {
			t.Errorf("%d columns: header is %d wide", tt.width, w)
		}
	}
}

// TestRefusalNamesInstance: the proxy's 429 carries no instance (it
// refuses before the agent looks); the row names the instance its source
// address was on an earlier request through the same namespace, and a
// source never seen stays unnamed.
func TestRefusalNamesInstance(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/openstack", 200, t0.Add(-3*time.Second))
	refuse := func(rid, ip string, at time.Time) {
		tm.Send(EventMsg{Node: "node1", Event: events.Event{Time: at, RequestID: rid, Hop: events.HopProxy,
			Method: "GET", Path: "/openstack", Status: 429, Duration: time.Millisecond, Mode: events.ModeRouter, SourceIP: ip}})
	}
	refuse("req-2", "10.90.1.5", t0.Add(-2*time.Second))
	refuse("req-3", "10.90.1.77", t0.Add(-time.Second))
	waitFor(t, tm, "10.90.1.77")
	m := final(t, tm)
	if got := strings.Join(rowInstances(m), ","); got != ",vm-a,vm-a" {
		t.Errorf("rows name %q, want the unseen source unnamed, then vm-a for its 429 and its 200", got)
	}
}

// TestInstancesView: i shows one line per instance with its rates, 4xx
// and 5xx, p99, last status and last seen; one not seen in the window
// is SILENT. Golden screen: go test ./tui -run InstancesView -update.
func TestInstancesView(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-quiet", "/openstack", 200, t0.Add(-time.Minute))
	hops(tm, "req-2", "vm-a", "/openstack", 200, t0.Add(-3*time.Second))
	hops(tm, "req-3", "vm-a", "/openstack/latest/password", 404, t0.Add(-2*time.Second))
	hops(tm, "req-4", "vm-b", "/openstack", 503, t0.Add(-time.Second))
	waitFor(t, tm, "vm-b")
	tm.Send(press('i'))
	waitFor(t, tm, "SILENT for 1m0s")
	m := final(t, tm)
	golden.RequireEqual(t, []byte(m.screen()))
}

// TestRequestColours: each row of the request table is coloured by its
// status (4xx yellow, 429 its own, 5xx red, 2xx plain), the cursor's row
// reversed too; colour changes no column's width, so the screen without
// its escape codes is the same with colour and without, wide or narrow;
// and without colour no colour code is left. The table fills the window.
// Golden screens as a 16-colour
// terminal and a NO_COLOR one receive them (-update to regenerate).
func TestRequestColours(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.Local) // the TIME column shows local time
	screen := func(color bool, width int) string {
		m := tea.Model(New(Options{Nodes: []string{"node1"}, Now: func() time.Time { return at }, Styles: NewStyles(color)}))
		m, _ = m.Update(tea.WindowSizeMsg{Width: width, Height: 14})
		var evs []events.Event
		evs = append(evs, requestEvents("req-1", "vm-a", "/openstack/latest/meta_data.json", 200, at.Add(-5*time.Second))...)
		evs = append(evs, requestEvents("req-2", "vm-b", "/latest/meta-data/instance-id", 404, at.Add(-4*time.Second))...)
		evs = append(evs, events.Event{Time: at.Add(-3 * time.Second), RequestID: "req-3", Hop: events.HopProxy, Method: "GET",
			Path: "/openstack/latest/user_data", Status: 429, Duration: 40 * time.Microsecond, Mode: events.ModeRouter, SourceIP: "10.90.1.5"})
		evs = append(evs, requestEvents("req-4", "vm-c", "/openstack/latest/vendor_data2.json", 503, at.Add(-2*time.Second))...)
		evs = append(evs, requestEvents("req-5", "vm-d", "/latest/user-data", 200, at.Add(-time.Second))...)
		for _, e := range evs {
			m, _ = m.Update(EventMsg{Node: "node1", Event: e})
		}
		m, _ = m.Update(tickMsg(at))
		m, _ = m.Update(down) // onto req-4's 503
		m, _ = m.Update(down) // onto req-3's 429
		profile := colorprofile.Ascii
		if color {
			profile = colorprofile.ANSI
		}
		var b strings.Builder
		w := &colorprofile.Writer{Forward: &b, Profile: profile}
		if _, err := w.WriteString(m.(Model).screen()); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	line := func(screen, sub string) string {
		for _, l := range strings.Split(screen, "\n") {
			if strings.Contains(l, sub) {
				return l
			}
		}
		t.Fatalf("no line has %q:\n%s", sub, screen)
		return ""
	}
	for _, width := range []int{180, 100} {
		on, off := screen(true, width), screen(false, width)
		t.Run(fmt.Sprintf("%d/colour", width), func(t *testing.T) {
			for _, tt := range []struct{ sub, sgr string }{
				{" 404 ", "\x1b[93m"},   // 404: yellow
				{" 503 ", "\x1b[1;91m"}, // 503: red
				{" 429 ", "7;95m"},      // the cursor's 429: reversed magenta
			} {
				if l := line(on, tt.sub); !strings.HasPrefix(l, "\x1b[") || !strings.Contains(l, tt.sgr) {
					t.Errorf("row of %s lacks %q: %q", tt.sub, tt.sgr, l)
				}
			}
			if l := line(on, "vm-d"); strings.Contains(l, "\x1b[") {
				t.Errorf("2xx row is coloured: %q", l)
			}
			golden.RequireEqual(t, []byte(on))
		})
		t.Run(fmt.Sprintf("%d/no-colour", width), func(t *testing.T) {
			if sgr := termtest.ColourCode(off); sgr != "" {
				t.Errorf("colour code %q without colour", sgr)
			}
			if ansi.Strip(on) != ansi.Strip(off) {
				t.Errorf("colour moved the text:\n%s\nwithout colour:\n%s", ansi.Strip(on), ansi.Strip(off))
			}
			if h := lipgloss.Height(on); h != 14 {
				t.Errorf("the screen is %d lines in a 14-line window", h)
			}
			for i, l := range strings.Split(on, "\n") {
				if w := ansi.StringWidth(l); w > width {
					t.Errorf("line %d is %d wide in %d columns", i, w, width)
				}
			}
			golden.RequireEqual(t, []byte(off))
		})
	}
}
