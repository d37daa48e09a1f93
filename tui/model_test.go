package tui

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/mdctl/mdctl/server/events"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newTest(t *testing.T, o Options) *teatest.TestModel {
	t.Helper()
	if o.Nodes == nil {
		o.Nodes = []string{"node1"}
	}
	o.Now = func() time.Time { return t0 }
	o.Styles = NewStyles(io.Discard, false)
	return teatest.NewTestModel(t, New(o), teatest.WithInitialTermSize(180, 40))
}

// hops sends the three events of one request, as serve's hops would.
func hops(tm *teatest.TestModel, rid, inst, path string, status int, at time.Time) {
	for i, h := range []string{events.HopAPI, events.HopAgent, events.HopProxy} { // innermost finishes first
		e := events.Event{Time: at.Add(time.Duration(2-i) * time.Millisecond), RequestID: rid, Hop: h, Method: "GET", Path: path,
			Status: status, Duration: time.Duration(i+1) * time.Millisecond, Mode: events.ModeRouter, SourceIP: "10.90.1.5"}
		if h != events.HopProxy {
			e.InstanceID, e.InstanceName = "id-"+inst, inst
		}
		tm.Send(EventMsg{Node: "node1", Event: e})
	}
}

func waitFor(t *testing.T, tm *teatest.TestModel, subs ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		for _, s := range subs {
			if !bytes.Contains(b, []byte(s)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
}

func final(t *testing.T, tm *teatest.TestModel) Model {
	t.Helper()
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	return tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(Model)
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
			tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
			tm.Type(tt.typed)
			tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
			waitFor(t, tm, "filter: "+tt.typed)
			m := final(t, tm)
			if got := strings.Join(rowInstances(m), ","); got != tt.want {
				t.Errorf("filter %q shows %s, want %s", tt.typed, got, tt.want)
			}
		})
	}
}

func TestBadFilterIsRefused(t *testing.T) {
	tm := newTest(t, Options{})
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("/")})
	tm.Type("status=abc")
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitFor(t, tm, "status=abc: use a code")
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
	m := final(t, tm)
	if m.editing || m.filter.text != "" {
		t.Errorf("editing=%v filter=%q after esc", m.editing, m.filter.text)
	}
}

func TestPause(t *testing.T) {
	tm := newTest(t, Options{})
	hops(tm, "req-1", "vm-a", "/", 200, t0.Add(-2*time.Second))
	waitFor(t, tm, "vm-a")
	tm.Send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune(" ")})
	hops(tm, "req-2", "vm-b", "/", 200, t0.Add(-time.Second))
	waitFor(t, tm, "PAUSED (3 new)") // three hops' events
	// Still paused: the table has not moved.
	tm.Send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune(" ")})
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
	tm.Send(tea.KeyMsg{Type: tea.KeySpace, Runes: []rune(" ")})
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
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	// The newest (selected) request failed at the proxy: no agent or API event.
	waitFor(t, tm, "request req-2", "GET /x → 503", "no event (not on this path", "mode dhcp  namespace qdhcp-n1")
	tm.Send(tea.KeyMsg{Type: tea.KeyDown})
	waitFor(t, tm, "request req-1", "id-vm-a")
	tm.Send(tea.KeyMsg{Type: tea.KeyEsc})
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
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	tm.Send(tea.WindowSizeMsg{Width: 90, Height: 24})
	waitFor(t, tm, "request req-1")
	m := final(t, tm)
	v := m.View()
	if h := lipgloss.Height(v); h > 24 {
		t.Errorf("view is %d lines in a 24-line window", h)
	}
	for i, l := range strings.Split(v, "\n") {
		if w := lipgloss.Width(l); w > 90 {
			t.Errorf("line %d is %d wide in a 90-column window: %q", i, w, l)
		}
	}
	if m.table.t.Width() != 90 {
		t.Errorf("table width %d", m.table.t.Width())
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
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("t")})
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
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("t")})
	waitFor(t, tm, "tracing is not available")
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("?")})
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
	tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	waitFor(t, tm, "request req-2") // followed the head to the newest
	tm.Send(tea.KeyMsg{Type: tea.KeyDown})
	waitFor(t, tm, "request req-1")
	hops(tm, "req-3", "vm-c", "/openstack", 200, t0.Add(-time.Second))
	waitFor(t, tm, "vm-c")
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("g")})
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
		m := New(Options{Nodes: []string{"node1"}, Now: func() time.Time { return t0 }, Styles: NewStyles(io.Discard, false)})
		next, _ := m.Update(tea.WindowSizeMsg{Width: tt.width, Height: 30})
		head := strings.Split(next.(Model).table.t.View(), "\n")[0]
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
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("i")})
	waitFor(t, tm, "SILENT for 1m0s")
	m := final(t, tm)
	golden.RequireEqual(t, []byte(m.View()))
}
