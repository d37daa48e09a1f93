package diag

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// world is one test's universe (after e2e's): a store, a data plane named
// for this test only, and the serve runs it started in-process.
type world struct {
	t     *testing.T
	dir   string
	st    *store.SQLite
	dp    dataplane.Options
	log   *slog.Logger
	serve []func()
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and iptables rules")
	}
	for _, bin := range []string{"iptables", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s", bin)
		}
	}
}

func suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newWorld(t *testing.T, topo string) *world {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	st, err := store.OpenSQLite(filepath.Join(dir, "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := suffix()
	w := &world{
		t: t, dir: dir, st: st,
		dp:  dataplane.Options{SegmentNamespace: "mdtseg-" + s, GuestPrefix: "mdt" + s + "-"},
		log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	t.Cleanup(w.close)
	top, err := topology.Parse([]byte(topo), "topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Apply(context.Background(), st, top); err != nil {
		t.Fatal(err)
	}
	return w
}

// close stops every serve, then removes guests and the data plane even
// when the test failed.
func (w *world) close() {
	for i := len(w.serve) - 1; i >= 0; i-- {
		w.serve[i]()
	}
	ctx := context.Background()
	if err := dataplane.LabDown(ctx, w.dp); err != nil {
		w.t.Errorf("lab down: %v", err)
	}
	if err := dataplane.NewReconciler(w.dp).Teardown(ctx); err != nil {
		w.t.Errorf("teardown: %v", err)
	}
	w.st.Close()
}

// listen reserves a loopback port for an API.
func (w *world) listen() net.Listener {
	w.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	return ln
}

// startServe runs serve with components until stop (or the test's end).
// apiLn, when given, is the API's listener.
func (w *world) startServe(components []string, overrides map[string]string, apiLn net.Listener) (stop func()) {
	w.t.Helper()
	return w.startServeIn(w.dir, components, overrides, apiLn)
}

// startServeIn runs a serve with its own data dir: two serves cannot share
// one (each has its admin socket there).
func (w *world) startServeIn(dir string, components []string, overrides map[string]string, apiLn net.Listener) (stop func()) {
	w.t.Helper()
	o := server.Options{
		Store: w.st, DataDir: dir, Components: components, Overrides: overrides,
		Dataplane: w.dp, Poll: 50 * time.Millisecond, Logger: w.log, APIListener: apiLn,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, o) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					w.t.Errorf("serve %v: %v", components, err)
				}
			case <-time.After(10 * time.Second):
				w.t.Errorf("serve %v did not stop within 10s", components)
			}
		})
	}
	w.serve = append(w.serve, stop)
	return stop
}

// serveAll runs every component in one serve; it returns the API's URL.
func (w *world) serveAll() string {
	ln := w.listen()
	w.startServe(server.AllComponents, nil, ln)
	return "http://" + ln.Addr().String()
}

// labUp builds a guest per instance port with the routes DHCP would give;
// it returns each guest's namespace by instance name.
func (w *world) labUp() map[string]string {
	w.t.Helper()
	ctx := context.Background()
	snap, err := store.NewLive(w.st, nil).Snapshot(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	guests, err := server.LabGuests(ctx, w.st, snap.Config)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := dataplane.LabUp(ctx, w.dp, guests); err != nil {
		w.t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range guests {
		out[g.InstanceName] = dataplane.GuestNamespace(w.dp.GuestPrefix, g)
	}
	return out
}

func (w *world) opts(apiURL string) Options {
	return Options{Store: w.st, DataDir: w.dir, Dataplane: w.dp, APIURL: apiURL}
}

// routerNS is the qrouter namespace of the named router.
func (w *world) routerNS(name string) string {
	w.t.Helper()
	r, err := w.st.GetRouter(context.Background(), name)
	if err != nil {
		w.t.Fatal(err)
	}
	return dataplane.RouterNamespace(r.ID)
}

// run runs argv (bounded in time) and fails the test when it fails.
func run(t *testing.T, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var e bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stderr = &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, e.String())
	}
}

// inNS runs argv inside a namespace.
func inNS(t *testing.T, ns string, argv ...string) {
	t.Helper()
	run(t, append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
