package admin

import (
	"context"
	"sync"

	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// Registry remembers which of serve's components run, where, and how
// they ended; its Components method is the Status func of Options.
type Registry struct {
	bus   *events.Bus
	mu    sync.Mutex
	comps []Component // in registration order
}

// NewRegistry returns an empty registry whose counts come from bus.
func NewRegistry(bus *events.Bus) *Registry { return &Registry{bus: bus} }

// Track wraps a component's run function: the component is up while it
// runs, down with its error after.
func (r *Registry) Track(name, addr string, run func() error) func() error {
	r.set(Component{Name: name, Up: true, Address: addr})
	return func() error {
		err := run()
		c := Component{Name: name, Address: addr}
		if err != nil {
			c.Error = err.Error()
		}
		r.set(c)
		return err
	}
}

func (r *Registry) set(c Component) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.comps {
		if r.comps[i].Name == c.Name {
			r.comps[i] = c
			return
		}
	}
	r.comps = append(r.comps, c)
}

// Components reports every tracked component with its request counts
// (for the hops the bus counts).
func (r *Registry) Components(context.Context) []Component {
	r.mu.Lock()
	out := make([]Component, len(r.comps))
	copy(out, r.comps)
	r.mu.Unlock()
	for i := range out {
		for _, hop := range events.Hops {
			if out[i].Name == hop {
				total, failed := r.bus.Metrics().Requests(hop)
				out[i].Counts = map[string]uint64{"requests": total, "failed": failed}
			}
		}
	}
	return out
}

// StoreNames looks instance names up in st, for Options.Names; a miss
// gives "".
func StoreNames(st store.Reader) func(context.Context, string) string {
	return func(ctx context.Context, id string) string {
		in, err := st.GetInstance(ctx, id)
		if err != nil {
			return ""
		}
		return in.Name
	}
}
