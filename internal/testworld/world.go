package testworld

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// World is one test's universe. Its fields may be read and, before the
// first StartServe or LabUp, changed (a test may set Dataplane.GuestRoutes).
type World struct {
	Dir       string            // the test's data dir, also the default serve's
	Store     *store.SQLite     // the store every serve of this world reads
	Dataplane dataplane.Options // names unique to this world
	Log       *slog.Logger      // goes to t.Log

	t      *testing.T
	serves []func()
	guests map[string]dataplane.Guest // by instance name, from the last LabUp
	// hosts and outside are the Host stand-ins and OutsideVM namespaces,
	// removed after the data plane.
	hosts, outside []string
}

// NamePrefix starts the name of the namespaces a World makes for stand-in
// hosts and outside machines. Its segment and guests have the names mdctl
// gives the World's data dir (dataplane.ForDataDir), so that an mdctl
// command run on w.Dir (trace, lab, cleanup, the TUI's tracer) sees the
// same ones; router and DHCP namespaces are named by ID.
const NamePrefix = "mdtw"

type config struct{ level slog.Level }

// Option changes how New builds a World.
type Option func(*config)

// LogLevel sets the least level of serve's logs that reach t.Log
// (default warn).
func LogLevel(l slog.Level) Option { return func(c *config) { c.level = l } }

// New skips t unless it can build namespaces (RequireRoot), then makes a
// World with topo (topology YAML) applied. Everything the World starts is
// stopped, and everything it built removed, in t.Cleanup, even on failure.
func New(t *testing.T, topo string, opts ...Option) *World {
	t.Helper()
	RequireRoot(t)
	c := config{level: slog.LevelWarn}
	for _, o := range opts {
		o(&c)
	}
	dir := t.TempDir()
	st, err := store.OpenSQLite(filepath.Join(dir, "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := dataplane.ForDataDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	w := &World{
		Dir: dir, Store: st, t: t, Dataplane: names,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: c.level})),
	}
	t.Cleanup(w.close) // before TempDir's cleanup: serves stop before their dir goes
	w.Apply(topo)
	return w
}

// Apply applies topology YAML to the store.
func (w *World) Apply(topo string) {
	w.t.Helper()
	top, err := topology.Parse([]byte(topo), "topology.yaml")
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := topology.Apply(context.Background(), w.Store, top); err != nil {
		w.t.Fatal(err)
	}
}

// Set stores a setting, as `mdctl config set` does; running serves see it.
func (w *World) Set(key, value string) {
	w.t.Helper()
	if err := w.Store.SetSetting(context.Background(), key, value); err != nil {
		w.t.Fatal(err)
	}
}

// close stops every serve, newest first, then removes guests and the data
// plane even when the test failed.
func (w *World) close() {
	for i := len(w.serves) - 1; i >= 0; i-- {
		w.serves[i]()
	}
	ctx := context.Background()
	if err := dataplane.LabDown(ctx, w.Dataplane); err != nil {
		w.t.Errorf("lab down: %v", err)
	}
	if err := dataplane.NewReconciler(w.Dataplane).Teardown(ctx); err != nil {
		w.t.Errorf("teardown: %v", err)
	}
	w.closeOutside()
	w.Store.Close()
}

// ServeOptions are one in-process `mdctl serve`'s.
type ServeOptions struct {
	// Dir is its data dir; default the World's. Two serves running at once
	// need their own: each keeps its admin socket there.
	Dir        string
	Components []string          // default server.AllComponents
	Overrides  map[string]string // its --set KEY=VALUE
	// APIListener is the API's; default a free port on 127.0.0.1 when
	// Components include the API.
	APIListener net.Listener
	// AdminListen is serve's --admin-listen ("" for none).
	AdminListen string
	// Resync is how often serve restores kernel state someone else
	// removed; default never, so that a fault a test injects stays for
	// trace to find (mdctl serve's own default is 5s).
	Resync time.Duration
}

// StartServe runs a serve until stop is called or the test ends. apiAddr
// is the API's host:port ("" without an API). stop may be called more
// than once; it reports serve's error to the test.
func (w *World) StartServe(so ServeOptions) (apiAddr string, stop func()) {
	w.t.Helper()
	o := server.Options{
		Store: w.Store, DataDir: so.Dir, Components: so.Components, Overrides: so.Overrides,
		Dataplane: w.Dataplane, Poll: 50 * time.Millisecond, Logger: w.Log, APIListener: so.APIListener, AdminListen: so.AdminListen,
		Resync: so.Resync,
	}
	if o.Resync == 0 {
		o.Resync = -1
	}
	if o.DataDir == "" {
		o.DataDir = w.Dir
	}
	if len(o.Components) == 0 {
		o.Components = server.AllComponents
	}
	if o.APIListener == nil && slices.Contains(o.Components, server.ComponentAPI) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			w.t.Fatal(err)
		}
		o.APIListener = ln
	}
	if o.APIListener != nil {
		apiAddr = o.APIListener.Addr().String()
	}
	stop = w.run(o)
	w.serves = append(w.serves, stop)
	return apiAddr, stop
}

// run starts server.Run in a goroutine; the returned stop cancels it and
// waits, bounded, for it to return.
func (w *World) run(o server.Options) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, o) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					w.t.Errorf("serve %v: %v", o.Components, err)
				}
			case <-time.After(10 * time.Second):
				w.t.Errorf("serve %v did not stop within 10s", o.Components)
			}
		})
	}
}

// LabUp builds (or refreshes: the guests renew their leases) a guest per
// instance port with the routes DHCP would give. It returns the guests by
// instance name.
func (w *World) LabUp() map[string]dataplane.Guest {
	w.t.Helper()
	ctx := context.Background()
	snap, err := store.NewLive(w.Store, nil).Snapshot(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	guests, err := server.LabGuests(ctx, w.Store, snap.Config)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := dataplane.LabUp(ctx, w.Dataplane, guests); err != nil {
		w.t.Fatal(err)
	}
	w.guests = map[string]dataplane.Guest{}
	for _, g := range guests {
		w.guests[g.InstanceName] = g
	}
	return w.guests
}

// GuestNS is the namespace of the named instance's lab guest (LabUp first).
func (w *World) GuestNS(instance string) string {
	w.t.Helper()
	g, ok := w.guests[instance]
	if !ok {
		w.t.Fatalf("no lab guest for %s (guests: %s)", instance, strings.Join(slices.Sorted(maps.Keys(w.guests)), ", "))
	}
	return dataplane.GuestNamespace(w.Dataplane.GuestPrefix, g)
}

// RouterNS is the qrouter namespace of the named router.
func (w *World) RouterNS(router string) string {
	w.t.Helper()
	return dataplane.RouterNamespace(w.Router(router).ID)
}

// Router is the stored router by name or ID.
func (w *World) Router(ref string) store.Router {
	w.t.Helper()
	return lookup(w, w.Store.GetRouter, ref)
}

// Network is the stored network by name or ID.
func (w *World) Network(ref string) store.Network {
	w.t.Helper()
	return lookup(w, w.Store.GetNetwork, ref)
}

// Instance is the stored instance by name or ID.
func (w *World) Instance(ref string) store.Instance {
	w.t.Helper()
	return lookup(w, w.Store.GetInstance, ref)
}

// lookup reads one stored object and fails the test when it cannot.
func lookup[T any](w *World, get func(context.Context, string) (T, error), ref string) T {
	w.t.Helper()
	v, err := get(context.Background(), ref)
	if err != nil {
		w.t.Fatalf("%s: %v", ref, err)
	}
	return v
}

// testWriter sends serve's log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
