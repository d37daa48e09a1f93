package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/store"
)

const toolsTopo = twoNodeTopo + `
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5
  - name: vm2
    project: demo
    network: net2
    ip: 10.90.2.5
`

// traceOut is the part of trace --json this test reads.
type traceOut struct {
	OK   bool   `json:"ok"`
	Node string `json:"node"`
	Host string `json:"host"`
	Hops []struct {
		Name    string `json:"name"`
		OK      bool   `json:"ok"`
		Skipped bool   `json:"skipped"`
		Node    string `json:"node"`
		Detail  string `json:"detail"`
	} `json:"hops"`
}

// TestToolsAcrossNodes: two serves on one PostgreSQL, each with a TCP
// admin endpoint behind one token. From node-a's data dir, status shows
// both nodes' components, config set says the change is in force on both,
// and trace of an instance whose router node-b hosts runs the namespace,
// iptables and proxy checks on node-b (its log says so); with node-b
// stopped those hops are NOT CHECKED with why and trace exits 1, and
// status shows node-b unreachable.
func TestToolsAcrossNodes(t *testing.T) {
	testworld.RequireRoot(t)
	url := pgtest.Start(t).NewDB(t)
	bin := buildMdctl(t)
	st, err := store.Open("", url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte("e2e-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b, nodes := newTwoNodes(t, bin)
	serves := map[string]*serveProc{}
	for _, n := range []nodeDir{a, b} {
		serves[n.name] = startServeArgs(t, bin, "--data-dir", n.dir, "--db", url, "serve", "--node", n.name, "--components", "agent,proxy",
			"--admin-listen", "127.0.0.1:0", "--admin-token-file", tokenFile)
	}
	waitNodes(t, st, 2, func(n store.Node) bool { return n.AdminURL != "" }) // with their TCP admin endpoints
	applyTopology(t, st, toolsTopo)
	hosts := builtBy(t, st, nodes, "each node builds its share", func(h map[string][]string) error {
		if x, y := h["r1"], h["r2"]; len(x) != 1 || len(y) != 1 || x[0] == y[0] {
			return fmt.Errorf("bindings %v, want one router on each node", h)
		}
		return nil
	})
	onB, onA := "vm1", "vm2"
	if hosts["r1"][0] != b.name {
		onB, onA = onA, onB
	}
	t.Logf("routers: %v; %s behind node-b's router, %s behind node-a's", hosts, onB, onA)

	mdctl := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--data-dir", a.dir, "--db", url}, args...)...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			return ee.ExitCode(), out.String(), errOut.String()
		case err != nil:
			t.Fatalf("mdctl %v: %v", args, err)
		}
		return 0, out.String(), errOut.String()
	}

	// status: both nodes, each with its own components.
	code, out, errOut := mdctl("status", "-o", "json", "--admin-token-file", tokenFile)
	var status struct {
		Nodes []struct {
			Node   string `json:"node"`
			Error  string `json:"error"`
			Status *struct {
				Node       string `json:"node"`
				Components []struct {
					Name string `json:"name"`
					Up   bool   `json:"up"`
				} `json:"components"`
			} `json:"status"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil || code != 0 {
		t.Fatalf("status: exit %d, %v\n%s\n%s", code, err, out, errOut)
	}
	if len(status.Nodes) != 2 {
		t.Fatalf("status shows %d nodes:\n%s", len(status.Nodes), out)
	}
	for i, want := range []string{"node-a", "node-b"} {
		n := status.Nodes[i]
		if n.Node != want || n.Status == nil || n.Status.Node != want || len(n.Status.Components) < 2 {
			t.Errorf("status of %s: %+v", want, n)
			continue
		}
		for _, c := range n.Status.Components {
			if !c.Up {
				t.Errorf("%s's %s is down", want, c.Name)
			}
		}
	}
	code, out, _ = mdctl("status")
	if code != 0 || !strings.Contains(out, "node-a  agent") || !strings.Contains(out, "node-b  proxy") {
		t.Errorf("status table (exit %d):\n%s", code, out)
	}

	// node-b's TCP endpoint takes the token of --admin-token-file, and
	// refuses a request without it.
	nb, err := st.GetNode(context.Background(), b.name)
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := mdctl("status", "--server", nb.AdminURL, "--admin-token-file", tokenFile); code != 0 || !strings.Contains(out, "proxy") {
		t.Errorf("status --server %s with the token: exit %d\n%s%s", nb.AdminURL, code, out, errOut)
	}
	if code, _, errOut := mdctl("status", "--server", nb.AdminURL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("status --server %s without a token: exit %d, %s", nb.AdminURL, code, errOut)
	}

	// config set reaches both, and says so.
	start := time.Now()
	code, _, errOut = mdctl("config", "set", "--admin-token-file", tokenFile, "metadata_cache_expiration", "7")
	t.Logf("config set answered in %v:\n%s", time.Since(start).Round(time.Millisecond), errOut)
	for _, want := range []string{"node node-a: in force", "node node-b: in force", "metadata_cache_expiration: in force on 2 of 2 nodes"} {
		if code != 0 || !strings.Contains(errOut, want) {
			t.Errorf("config set (exit %d): stderr lacks %q", code, want)
		}
	}

	// trace of the instance behind node-b's router: the kernel checks run
	// on node-b.
	kernelRuns := func(n string) int {
		bs, _ := os.ReadFile(serves[n].log)
		return strings.Count(string(bs), "running the kernel checks of a trace from another node")
	}
	trace := func(inst string) (int, traceOut) {
		t.Helper()
		code, out, errOut := mdctl("trace", inst, "--json", "--admin-token-file", tokenFile)
		var r traceOut
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("trace %s: exit %d, %v\n%s\n%s", inst, code, err, out, errOut)
		}
		return code, r
	}
	_, r := trace(onB)
	if r.Host != b.name || r.Node != a.name {
		t.Errorf("trace %s: host %q node %q, want node-b hosting, traced from node-a", onB, r.Host, r.Node)
	}
	for _, h := range r.Hops {
		kernel := h.Name == "namespace" || h.Name == "iptables" || h.Name == "proxy"
		switch {
		case kernel && (h.Node != b.name || !h.OK):
			t.Errorf("trace %s: hop %s on %q ok %v (%s), want checked and passed on node-b", onB, h.Name, h.Node, h.OK, h.Detail)
		case !kernel && h.Node != a.name:
			t.Errorf("trace %s: hop %s on %q, want node-a", onB, h.Name, h.Node)
		}
	}
	if got := kernelRuns(b.name); got != 1 {
		t.Errorf("node-b ran %d kernel traces for node-a, want 1", got)
	}
	if _, r := trace(onA); r.Host != a.name || kernelRuns(a.name) != 0 || kernelRuns(b.name) != 1 {
		t.Errorf("trace %s: host %q; kernel runs a %d, b %d: want node-a hosting, checked locally", onA, r.Host, kernelRuns(a.name), kernelRuns(b.name))
	}

	// node-b stops: it is alive in the store for agent_down_time yet, and
	// does not answer.
	serves[b.name].stop(syscall.SIGTERM, 15*time.Second)
	code, r = trace(onB)
	if code != 1 || r.OK {
		t.Errorf("trace %s with node-b down: exit %d ok %v, want 1", onB, code, r.OK)
	}
	for _, h := range r.Hops {
		if (h.Name == "namespace" || h.Name == "iptables" || h.Name == "proxy") &&
			(!h.Skipped || h.Node != b.name || !strings.Contains(h.Detail, "node node-b hosts router") || !strings.Contains(h.Detail, "does not answer")) {
			t.Errorf("hop %s with node-b down: %+v", h.Name, h)
		}
	}
	code, out, _ = mdctl("status", "--admin-token-file", tokenFile)
	if code != 1 || !strings.Contains(out, "node-b  -") || !strings.Contains(out, "unreachable: ") || !strings.Contains(out, "node-a  agent") {
		t.Errorf("status with node-b down (exit %d):\n%s", code, out)
	}
	t.Logf("status with node-b down:\n%s", out)
}
