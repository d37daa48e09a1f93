package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

// Two nodes, one PostgreSQL store, one machine: each serve (its own data
// dir, so its own segment namespace and owner mark) builds only the
// routers and DHCP networks bound to it. The faithful several-host
// simulation (each host its own /run/netns) is multihost_test.go's; here
// the namespace names are the machine's, so whose a qrouter-… is shows in
// its owner mark.

const twoNodeTopo = `
routers:
  - name: r1
    project: demo
  - name: r2
    project: demo
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24
    router: r1
  - name: net2
    project: demo
    cidr: 10.90.2.0/24
    router: r2
`

// nodeDir is one node's data dir and the names its data plane uses.
type nodeDir struct {
	name string // --node
	dir  string
	dp   dataplane.Options
}

func newNodeDir(t *testing.T, name string) nodeDir {
	t.Helper()
	dir := t.TempDir()
	dp, err := dataplane.ForDataDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return nodeDir{name: name, dir: dir, dp: dp}
}

// waitNodes waits until n nodes have registered in st, each ok (nil: any).
func waitNodes(t *testing.T, st store.Store, n int, ok func(store.Node) bool) {
	t.Helper()
	testworld.WaitFor(t, 30*time.Second, fmt.Sprintf("%d nodes registered", n), func() error {
		nodes, err := st.ListNodes(context.Background())
		if err != nil || len(nodes) != n {
			return fmt.Errorf("nodes %+v, %v", nodes, err)
		}
		for _, node := range nodes {
			if ok != nil && !ok(node) {
				return fmt.Errorf("node %+v not ready", node)
			}
		}
		return nil
	})
}

// applyTopology applies topology YAML to st.
func applyTopology(t *testing.T, st store.Store, yaml string) {
	t.Helper()
	top, err := topology.Parse([]byte(yaml), "topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Apply(context.Background(), st, top); err != nil {
		t.Fatal(err)
	}
}

// owner is the owner mark on a namespace's lo ("" when the namespace is
// not there): which data dir's mdctl built it.
func owner(ns string) string {
	out, err := exec.Command("ip", "-n", ns, "-d", "link", "show", "lo").CombinedOutput()
	if err != nil {
		return ""
	}
	for _, f := range strings.Split(string(out), "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(f), "alias "); ok {
			return a
		}
	}
	return "unmarked"
}

func mark(n nodeDir) string { return "mdctl:owner:" + n.dp.SegmentNamespace }

// hostsIn is every router's and network's hosts, by name.
func hostsIn(t *testing.T, st store.Store) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, name := range []string{"r1", "r2"} {
		r, err := st.GetRouter(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := st.RouterHosts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = h
	}
	for _, name := range []string{"net1", "net2"} {
		n, err := st.GetNetwork(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		h, err := st.NetworkHosts(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = h
	}
	return out
}

// nsOf is the namespace of router or network name.
func nsOf(t *testing.T, st store.Store, name string) string {
	t.Helper()
	ctx := context.Background()
	if strings.HasPrefix(name, "r") {
		r, err := st.GetRouter(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return dataplane.RouterNamespace(r.ID)
	}
	n, err := st.GetNetwork(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return dataplane.DHCPNamespace(n.ID)
}

// builtBy waits until each record's namespace carries the owner mark of
// the node the store binds it to, and returns that binding.
func builtBy(t *testing.T, st store.Store, nodes map[string]nodeDir, what string, want func(h map[string][]string) error) map[string][]string {
	t.Helper()
	var hosts map[string][]string
	testworld.WaitFor(t, 30*time.Second, what, func() error {
		hosts = hostsIn(t, st)
		if err := want(hosts); err != nil {
			return err
		}
		for name, h := range hosts {
			if len(h) != 1 {
				return fmt.Errorf("%s hosted by %v", name, h)
			}
			if got, want := owner(nsOf(t, st, name)), mark(nodes[h[0]]); got != want {
				return fmt.Errorf("%s bound to %s, but its namespace's owner is %q (want %q)", name, h[0], got, want)
			}
		}
		return nil
	})
	return hosts
}

// newTwoNodes makes node-a's and node-b's data dirs; their kernel state
// (namespaces, dnsmasq) goes after the test, once their serves stopped.
func newTwoNodes(t *testing.T, bin string) (a, b nodeDir, nodes map[string]nodeDir) {
	t.Helper()
	a, b = newNodeDir(t, "node-a"), newNodeDir(t, "node-b")
	for _, n := range []nodeDir{a, b} {
		t.Cleanup(func() { // after the serves stop (cleanups run last first)
			for _, pid := range dnsmasqPidsIn(t, n.dp.DHCPStateDir()) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			if out, err := exec.Command(bin, "--data-dir", n.dir, "cleanup", "--force").CombinedOutput(); err != nil {
				t.Errorf("cleanup %s: %v\n%s", n.name, err, out)
			}
		})
	}
	return a, b, map[string]nodeDir{a.name: a, b.name: b}
}

func TestTwoNodesShareAndFailOver(t *testing.T) {
	testworld.RequireRoot(t)
	ctx := context.Background()
	url := pgtest.Start(t).NewDB(t)
	bin := buildMdctl(t)
	st, err := store.Open("", url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetSetting(ctx, "agent_down_time", "2"); err != nil {
		t.Fatal(err)
	}
	a, b, nodes := newTwoNodes(t, bin)
	start := func(n nodeDir) *serveProc {
		return startServeArgs(t, bin, "--data-dir", n.dir, "--db", url, "serve", "--node", n.name, "--components", "agent,proxy")
	}
	pa := start(a)
	start(b)
	waitNodes(t, st, 2, nil)

	// Records made while both are up are spread: one router and one DHCP
	// network each, each built by its host alone.
	applyTopology(t, st, twoNodeTopo)
	hosts := builtBy(t, st, nodes, "each node builds its share", func(h map[string][]string) error {
		// Which router goes where follows their ids (random): only the
		// share is the scheduler's promise.
		for _, pair := range [][2]string{{"r1", "r2"}, {"net1", "net2"}} {
			x, y := h[pair[0]], h[pair[1]]
			if len(x) != 1 || len(y) != 1 || x[0] == y[0] {
				return fmt.Errorf("bindings %v, want one router and one network on each node", h)
			}
		}
		return nil
	})
	t.Logf("shared: %v", hosts)

	// kill -9 node-a: once its heartbeat is agent_down_time old, node-b
	// takes its router and network.
	killed := time.Now()
	if err := pa.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-pa.done
	testworld.WaitFor(t, 30*time.Second, "node-a's router and network bound to node-b", func() error {
		for name, h := range hostsIn(t, st) {
			if !slices.Equal(h, []string{"node-b"}) {
				return fmt.Errorf("%s on %v", name, h)
			}
		}
		return nil
	})
	t.Logf("bindings moved %v after kill -9 (agent_down_time 2s)", time.Since(killed).Round(10*time.Millisecond))

	// node-a's host is gone, and its namespaces with it; on this one
	// machine they stay until its mdctl cleanup (and its orphaned dnsmasq
	// with them), which is when node-b can build its own.
	for _, pid := range dnsmasqPidsIn(t, a.dp.DHCPStateDir()) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if out, err := exec.Command(bin, "--data-dir", a.dir, "cleanup").CombinedOutput(); err != nil {
		t.Fatalf("cleanup of node-a's data dir: %v\n%s", err, out)
	}
	builtBy(t, st, nodes, "node-b builds node-a's router and network", func(h map[string][]string) error {
		for name, hh := range h {
			if !slices.Equal(hh, []string{"node-b"}) {
				return fmt.Errorf("%s on %v", name, hh)
			}
		}
		return nil
	})
	t.Logf("node-b built them %v after kill -9", time.Since(killed).Round(10*time.Millisecond))

	// node-a comes back: it takes nothing back and builds nothing.
	restarted := time.Now()
	start(a)
	testworld.WaitFor(t, 30*time.Second, "node-a alive again and through its first pass", func() error {
		n, err := st.GetNode(ctx, "node-a")
		if err != nil || !n.StartedAt.After(restarted.Add(-time.Second)) {
			return fmt.Errorf("node-a %+v, %v", n, err)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", a.dp.SegmentNamespace)); err != nil {
			return err
		}
		return nil
	})
	// Beyond a scheduling interval of both: still all node-b's.
	time.Sleep(1500 * time.Millisecond)
	for name, h := range hostsIn(t, st) {
		if !slices.Equal(h, []string{"node-b"}) {
			t.Errorf("after node-a's comeback %s on %v", name, h)
		}
		if got := owner(nsOf(t, st, name)); got != mark(b) {
			t.Errorf("after node-a's comeback %s's namespace owner %q, want node-b's", name, got)
		}
	}

	out, err := exec.Command(bin, "--db", url, "node", "list", "-o", "json").Output()
	if err != nil {
		t.Fatalf("node list: %v", err)
	}
	var list []struct {
		Name     string   `json:"name"`
		Alive    bool     `json:"alive"`
		Routers  []string `json:"routers"`
		Networks []string `json:"networks"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(list) != 2 || !list[0].Alive || !list[1].Alive || len(list[0].Routers) != 0 || len(list[1].Routers) != 2 || len(list[1].Networks) != 2 {
		t.Errorf("node list after the comeback:\n%s", out)
	}
}
