package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
)

// Listen is one wanted proxy: its identity and how to open its listeners
// (inside the right namespace; the dataplane knows how).
type Listen struct {
	ID   Identity
	Open func() ([]net.Listener, error)
}

// Manager keeps a set of proxies running, keyed by a string such as
// "router:<id>" or "network:<id>": Sync starts the new and stops the gone.
type Manager struct {
	p   *Proxy
	log *slog.Logger

	mu      sync.Mutex
	base    context.Context
	stop    context.CancelFunc
	stopped bool
	running map[string]*instance
}

// instance is one running key: its listeners' Serve goroutines.
type instance struct {
	id     Identity
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan struct{} // closed when a listener stopped on its own
	once   sync.Once
}

// NewManager returns a Manager serving through p.
func NewManager(p *Proxy) *Manager {
	base, stop := context.WithCancel(context.Background())
	return &Manager{p: p, log: p.log, base: base, stop: stop, running: make(map[string]*instance)}
}

// Sync makes the running set equal want. Keys already running with the
// same identity are left alone, so calling it again is free; a key whose
// listener died is restarted. Open failures are returned (joined) and
// retried by the next Sync.
func (m *Manager) Sync(want map[string]Listen) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return errors.New("proxy manager: stopped")
	}
	for key, in := range m.running {
		w, ok := want[key]
		if !ok || w.ID != in.id || in.dead() {
			m.stopLocked(key, in)
		}
	}
	var errs []error
	for _, key := range sortedKeys(want) {
		if _, ok := m.running[key]; ok {
			continue
		}
		if err := m.startLocked(key, want[key]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Running lists the running keys, sorted.
func (m *Manager) Running() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.running))
	for k, in := range m.running {
		if !in.dead() {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// Run waits for ctx and then stops every proxy.
func (m *Manager) Run(ctx context.Context) error {
	<-ctx.Done()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	for key, in := range m.running {
		m.stopLocked(key, in)
	}
	m.stop()
	return nil
}

func (m *Manager) startLocked(key string, w Listen) error {
	if err := w.ID.valid(); err != nil {
		return fmt.Errorf("proxy %s: %w", key, err)
	}
	lns, err := w.Open()
	if err != nil {
		return fmt.Errorf("proxy %s: open listeners: %w", key, err)
	}
	if len(lns) == 0 {
		return fmt.Errorf("proxy %s: no listeners opened", key)
	}
	ctx, cancel := context.WithCancel(m.base)
	in := &instance{id: w.ID, cancel: cancel, failed: make(chan struct{})}
	for _, ln := range lns {
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			if err := m.p.Serve(ctx, ln, w.ID); err != nil {
				m.log.Error("proxy listener stopped", "key", key, "err", err)
				in.once.Do(func() { close(in.failed) })
			}
		}()
		m.log.Info("proxy listening", "key", key, "addr", ln.Addr().String())
	}
	m.running[key] = in
	return nil
}

func (m *Manager) stopLocked(key string, in *instance) {
	in.cancel()
	in.wg.Wait()
	delete(m.running, key)
	m.log.Info("proxy stopped", "key", key)
}

func (in *instance) dead() bool {
	select {
	case <-in.failed:
		return true
	default:
		return false
	}
}

func sortedKeys(m map[string]Listen) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
