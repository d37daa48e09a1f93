package agent

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mdctl/mdctl/store"
)

// fakeStore is an in-memory store.Reader holding ports and settings; the
// other Reader methods are not used by the agent and panic if called.
type fakeStore struct {
	store.Reader
	mu        sync.Mutex
	gen       uint64
	ports     []store.Port
	settings  map[string]string
	listCalls atomic.Int64
}

func newFakeStore(ports ...store.Port) *fakeStore {
	return &fakeStore{gen: 1, ports: ports, settings: map[string]string{}}
}

func (f *fakeStore) Generation(context.Context) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, nil
}

func (f *fakeStore) Settings(context.Context) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]string, len(f.settings))
	for k, v := range f.settings {
		out[k] = v
	}
	return out, nil
}

func (f *fakeStore) set(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settings[key] = value
	f.gen++
}

func (f *fakeStore) addPort(p store.Port) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ports = append(f.ports, p)
	f.gen++
}

// ListPorts follows store.PortFilter: empty fields match all, fields AND,
// values within a field OR.
func (f *fakeStore) ListPorts(_ context.Context, pf store.PortFilter) ([]store.Port, error) {
	f.listCalls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Port
	for _, p := range f.ports {
		if in(pf.NetworkIDs, p.NetworkID) && in(pf.DeviceIDs, p.DeviceID) && in(pf.DeviceOwners, p.DeviceOwner) &&
			inFold(pf.MACAddresses, p.MACAddress) && hasIP(pf.IPAddresses, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func in(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func inFold(list []string, v string) bool {
	if len(list) == 0 {
		return true
	}
	for _, x := range list {
		if strings.EqualFold(x, v) {
			return true
		}
	}
	return false
}

func hasIP(list []string, p store.Port) bool {
	if len(list) == 0 {
		return true
	}
	for _, f := range p.FixedIPs {
		if in(list, f.IPAddress) {
			return true
		}
	}
	return false
}
