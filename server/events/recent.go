package events

import (
	"context"
	"slices"
	"sync"
)

// Recent remembers the last few requests of each instance as the agent saw
// them (the hop that knows which instance asked), so a tracer can show what
// a guest it cannot enter last did. It reads the bus like any subscriber:
// a request never waits for it, and under a storm it may miss some.
type Recent struct {
	bus         *Bus
	perInstance int
	maxInstance int

	mu sync.Mutex
	by map[string][]Event // instance id → oldest first
}

// Bounds of what Recent keeps.
const (
	RecentPerInstance = 8
	RecentInstances   = 4096
)

// NewRecent returns a Recent fed from bus once Run runs.
func NewRecent(bus *Bus) *Recent {
	return &Recent{bus: bus, perInstance: RecentPerInstance, maxInstance: RecentInstances, by: map[string][]Event{}}
}

// Run records the agent hop's events until ctx ends.
func (r *Recent) Run(ctx context.Context) error {
	sub := r.bus.SubscribeOwn(Filter{Hop: HopAgent}, 0)
	defer sub.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-sub.C:
			r.add(e)
		}
	}
}

func (r *Recent) add(e Event) {
	if e.InstanceID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	evs, ok := r.by[e.InstanceID]
	if !ok && len(r.by) >= r.maxInstance {
		// Forget one instance (map order is arbitrary enough): the bound
		// matters, not which.
		for id := range r.by {
			delete(r.by, id)
			break
		}
	}
	if len(evs) >= r.perInstance {
		evs = slices.Delete(evs, 0, 1)
	}
	r.by[e.InstanceID] = append(evs, e)
}

// Of returns the instance's last requests, newest last; nil for a nil
// Recent or an instance never seen.
func (r *Recent) Of(instanceID string) []Event {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.by[instanceID])
}
