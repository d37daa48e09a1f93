package agent

import (
	"context"
	"fmt"
	"sync"

	"github.com/mdctl/mdctl/store"
)

// routerInterfaceOwners are neutron's ROUTER_INTERFACE_OWNERS: the device
// owners whose ports join a router to its networks.
var routerInterfaceOwners = []string{
	store.OwnerRouterInterface,
	"network:ha_router_replicated_interface",
	"network:router_interface_distributed",
}

// maxCacheEntries bounds the lookup cache; past it the cache starts over,
// which only costs a store query per entry.
const maxCacheEntries = 65536

// scope is where the proxy says the request came from: a router or a network.
type scope struct {
	Kind string // "router" or "network"
	ID   string
}

// match is a lookup's outcome. Found is false unless exactly one port
// matched, as neutron forwards only then.
type match struct {
	InstanceID, ProjectID string
	Ports                 int
}

func (m match) Found() bool { return m.Ports == 1 }

type cacheKey struct {
	scope scope
	addr  string // ip, or mac for a link-local IPv6 source
}

// resolver runs neutron's port lookups, caching results until the store's
// generation moves. Negative results are cached too: any write that could
// change them bumps the generation.
type resolver struct {
	st store.Reader

	mu    sync.Mutex
	gen   uint64
	cache map[cacheKey]match
}

func newResolver(st store.Reader) *resolver {
	return &resolver{st: st, cache: make(map[cacheKey]match)}
}

// resolve finds the port behind src within sc, as of store generation gen.
func (r *resolver) resolve(ctx context.Context, gen uint64, sc scope, src source) (m match, cached bool, err error) {
	key := cacheKey{scope: sc, addr: src.IP.String()}
	if src.MAC != "" {
		key.addr = src.MAC
	}
	r.mu.Lock()
	if r.gen != gen {
		r.gen, r.cache = gen, make(map[cacheKey]match)
	}
	m, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		return m, true, nil
	}
	m, err = r.query(ctx, sc, src)
	if err != nil {
		return match{}, false, err
	}
	r.mu.Lock()
	if r.gen == gen {
		if len(r.cache) >= maxCacheEntries {
			r.cache = make(map[cacheKey]match)
		}
		r.cache[key] = m
	}
	r.mu.Unlock()
	return m, false, nil
}

// query is neutron's get_port: a router's interface networks (or the one
// network), then the ports on them holding the address.
func (r *resolver) query(ctx context.Context, sc scope, src source) (match, error) {
	var networks []string
	switch sc.Kind {
	case "network":
		networks = []string{sc.ID}
	case "router":
		ifaces, err := r.st.ListPorts(ctx, store.PortFilter{DeviceIDs: []string{sc.ID}, DeviceOwners: routerInterfaceOwners})
		if err != nil {
			return match{}, fmt.Errorf("router %s: list interfaces: %w", sc.ID, err)
		}
		for _, p := range ifaces {
			networks = appendUnique(networks, p.NetworkID)
		}
	default:
		return match{}, fmt.Errorf("unknown scope %q", sc.Kind)
	}
	// neutron drops an empty network filter and would search every
	// network; a router without interfaces has no guests, so find none.
	if len(networks) == 0 {
		return match{}, nil
	}
	f := store.PortFilter{NetworkIDs: networks}
	if src.MAC != "" {
		f.MACAddresses = []string{src.MAC}
	} else {
		f.IPAddresses = []string{src.IP.String()}
	}
	ports, err := r.st.ListPorts(ctx, f)
	if err != nil {
		return match{}, fmt.Errorf("%s %s: list ports with %s: %w", sc.Kind, sc.ID, src.IP, err)
	}
	m := match{Ports: len(ports)}
	if len(ports) == 1 {
		m.InstanceID, m.ProjectID = ports[0].DeviceID, ports[0].ProjectID
	}
	return m, nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
