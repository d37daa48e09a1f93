package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/mdctl/mdctl/server/events"
)

// TestTableScrolls: the cursor stays on screen whatever the keys do, and
// a request selected below the head keeps its line on the screen while
// newer rows arrive above it; at the head the cursor follows the newest.
func TestTableScrolls(t *testing.T) {
	reqs := func(from, to int) []*request { // newest first
		var out []*request
		for i := to; i >= from; i-- {
			e := events.Event{Hop: events.HopProxy, Method: "GET", Path: fmt.Sprintf("/r%02d", i), Status: 200}
			out = append(out, &request{ID: fmt.Sprint(i), First: t0.Add(time.Duration(i) * time.Second), Hops: map[string]events.Event{events.HopProxy: e}})
		}
		return out
	}
	p := newRequestsPane(NewStyles(false))
	p.layout(120, 5, false) // three rows under the titles
	all := reqs(0, 9)
	p.set(all[2:]) // 7 … 0
	// screenLine is where the cursor's row is drawn, 0 the first row.
	screenLine := func() int {
		for i, l := range strings.Split(p.view(), "\n")[2:] {
			if strings.Contains(l, p.selected().outer().Path) {
				return i
			}
		}
		t.Fatalf("the selected row is off screen:\n%s", p.view())
		return -1
	}
	steps := []struct {
		do        func()
		sel, line int // the selected request's number, and its screen line
		offscreen string
	}{
		{func() {}, 7, 0, ""},
		{func() { p.update(press('j')); p.update(press('j')); p.update(press('j')); p.update(press('j')) }, 3, 2, "/r07"},
		{func() { p.update(press('k')); p.update(press('k')) }, 5, 0, "/r06"},
		{func() { p.set(all) }, 5, 0, "/r06"},                                  // two newer rows above: r05 keeps its line
		{func() { p.update(tea.KeyPressMsg{Code: tea.KeyEnd}) }, 0, 2, "/r03"}, // G/end: the oldest, at the bottom
		{func() { p.update(press('k')) }, 1, 1, "/r03"},
		{func() { p.update(press('g')); p.set(reqs(0, 11)) }, 11, 0, "/r08"}, // back at the head, it follows
	}
	for i, s := range steps {
		s.do()
		if got := p.selected().ID; got != fmt.Sprint(s.sel) {
			t.Fatalf("step %d: selected r%s, want r%d", i, got, s.sel)
		}
		if got := screenLine(); got != s.line {
			t.Errorf("step %d: r%d drawn on line %d, want %d:\n%s", i, s.sel, got, s.line, p.view())
		}
		if s.offscreen != "" && strings.Contains(p.view(), s.offscreen) {
			t.Errorf("step %d: %s still on a three-row screen:\n%s", i, s.offscreen, p.view())
		}
	}
}
