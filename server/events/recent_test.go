package events

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRecentKeepsTheLastFewPerInstance: the agent's events are kept per
// instance, newest last, bounded; other hops and unresolved requests are
// not.
func TestRecentKeepsTheLastFewPerInstance(t *testing.T) {
	bus := NewBus()
	r := NewRecent(bus)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Run subscribes asynchronously; wait until it is on the bus.
	for deadline := time.Now().Add(5 * time.Second); bus.Readers() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for i := range RecentPerInstance + 3 {
		bus.Publish(Event{Hop: HopAgent, InstanceID: "i1", Path: fmt.Sprintf("/p%d", i)})
	}
	bus.Publish(Event{Hop: HopProxy, InstanceID: "i1", Path: "/proxy"})
	bus.Publish(Event{Hop: HopAgent, Path: "/unresolved"})
	bus.Publish(Event{Hop: HopAgent, InstanceID: "i2", Path: "/other"})
	var got []Event
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got = r.Of("i2"); len(got) == 1 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs := r.Of("i1")
	if len(evs) != RecentPerInstance || evs[0].Path != "/p3" || evs[len(evs)-1].Path != fmt.Sprintf("/p%d", RecentPerInstance+2) {
		t.Errorf("i1: %d events, first %+v", len(evs), evs)
	}
	if len(got) != 1 || got[0].Path != "/other" {
		t.Errorf("i2: %+v", got)
	}
	if (*Recent)(nil).Of("i1") != nil || r.Of("nobody") != nil {
		t.Error("Of of nothing should be nil")
	}
}
