package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/store"
)

// TestNodeCommands: node list and show say which nodes are alive and what
// each hosts; router set --node pins; node delete forgets a dead node and
// refuses a live one.
func TestNodeCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seed(t, func(context.Context) (store.Store, error) { return store.Open(dir, "") })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.SetSetting(ctx, "agent_down_time", "1"))
	must(st.RegisterNode(ctx, store.Node{Name: "net-old", Components: []string{"proxy"}}))
	for range 100 { // net-old's one heartbeat ages past agent_down_time
		if n, _ := st.GetNode(ctx, "net-old"); time.Since(n.HeartbeatAt) > 1100*time.Millisecond {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	must(st.RegisterNode(ctx, store.Node{Name: "net-1", Components: []string{"agent", "proxy"}, AdminURL: "http://10.90.0.1:9100"}))
	r, err := st.GetRouter(ctx, "r1")
	must(err)
	must(st.SetRouterHosts(ctx, r.ID, []string{"net-1"}))
	n, err := st.GetNetwork(ctx, "net1")
	must(err)
	must(st.SetNetworkHosts(ctx, n.ID, []string{"net-old"}))

	code, out, errOut := runCLI(t, dir, "", "node", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("node list: %d %s", code, errOut)
	}
	var nodes []struct {
		Name        string    `json:"name"`
		Alive       bool      `json:"alive"`
		Components  []string  `json:"components"`
		Routers     []string  `json:"routers"`
		Networks    []string  `json:"networks"`
		HeartbeatAt time.Time `json:"heartbeat_at"`
	}
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(nodes) != 2 || nodes[0].Name != "net-1" || nodes[1].Name != "net-old" {
		t.Fatalf("node list = %s", out)
	}
	if !nodes[0].Alive || nodes[1].Alive {
		t.Errorf("alive: net-1 %v, net-old %v; want yes, no", nodes[0].Alive, nodes[1].Alive)
	}
	if !slices.Equal(nodes[0].Routers, []string{r.ID}) || len(nodes[0].Networks) != 0 ||
		!slices.Equal(nodes[1].Networks, []string{n.ID}) || nodes[0].HeartbeatAt.IsZero() ||
		!slices.Equal(nodes[0].Components, []string{"agent", "proxy"}) {
		t.Errorf("node list = %s", out)
	}

	code, out, _ = runCLI(t, dir, "", "node", "list")
	if code != 0 || !strings.Contains(out, "ALIVE") || !strings.Contains(out, "net-old  NO") || !strings.Contains(out, "r1") {
		t.Errorf("node list table (%d):\n%s", code, out)
	}
	code, out, _ = runCLI(t, dir, "", "node", "show", "net-1")
	if code != 0 || !strings.Contains(out, "router") || !strings.Contains(out, "r1 ("+r.ID+")") || !strings.Contains(out, "http://10.90.0.1:9100") {
		t.Errorf("node show (%d):\n%s", code, out)
	}
	if code, _, errOut = runCLI(t, dir, "", "node", "show", "nobody"); code != 1 || !strings.Contains(errOut, `node "nobody" not found`) {
		t.Errorf("node show nobody: %d %s", code, errOut)
	}

	code, out, errOut = runCLI(t, dir, "", "router", "set", "r1", "--node", "net-2", "-o", "json")
	if code != 0 || !strings.Contains(out, `"node": "net-2"`) || !strings.Contains(errOut, "no node net-2 has registered") {
		t.Errorf("router set --node (%d): %s %s", code, out, errOut)
	}
	if got, _ := st.GetRouter(ctx, "r1"); got.Node != "net-2" {
		t.Errorf("pin %q after router set --node net-2", got.Node)
	}
	if code, _, errOut = runCLI(t, dir, "", "router", "set", "r1"); code != 2 {
		t.Errorf("router set without --node: %d %s", code, errOut)
	}
	if code, _, _ = runCLI(t, dir, "", "router", "set", "r1", "--node", ""); code != 0 {
		t.Errorf("router set --node '': %d", code)
	}
	if got, _ := st.GetRouter(ctx, "r1"); got.Node != "" {
		t.Errorf("pin %q after router set --node ''", got.Node)
	}

	if code, _, errOut = runCLI(t, dir, "", "node", "delete", "net-1"); code != 1 || !strings.Contains(errOut, "is alive") {
		t.Errorf("node delete of a live node: %d %s", code, errOut)
	}
	if code, out, errOut = runCLI(t, dir, "", "node", "delete", "net-old"); code != 0 || !strings.Contains(out, "deleted node net-old") {
		t.Errorf("node delete net-old: %d %s %s", code, out, errOut)
	}
	if hosts, _ := st.NetworkHosts(ctx, n.ID); len(hosts) != 0 {
		t.Errorf("deleted node still hosts %s: %v", n.ID, hosts)
	}
}
