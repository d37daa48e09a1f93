package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/multihost"
	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// Three network nodes, each a simulated machine (internal/multihost: its
// own network namespace, /run/netns, PID namespace and host name), one
// PostgreSQL store, three provider networks whose bridges of the same
// name on every node are one wire, and a VM on each. Every node runs the
// API, the agent and the proxies; each agent asks its own node's API
// (nova_metadata_host's default, 127.0.0.1, is each node's own loopback).

var threeHosts = []string{"node-a", "node-b", "node-c"}

const threeHostTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: r1, project: demo}
  - {name: r2, project: demo}
  - {name: r3, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.71.0/24, router: r1, bridge: br-net1}
  - {name: net2, project: demo, cidr: 10.90.72.0/24, router: r2, bridge: br-net2}
  - {name: net3, project: demo, cidr: 10.90.73.0/24, router: r3, bridge: br-net3}
instances:
  - {name: vm1, project: demo, network: net1, ip: 10.90.71.10, host: compute-1}
  - {name: vm2, project: demo, network: net2, ip: 10.90.72.10, host: compute-1}
  - {name: vm3, project: demo, network: net3, ip: 10.90.73.10, host: compute-1}
`

// threeHostWorld is the running simulation.
type threeHostWorld struct {
	t      *testing.T
	bin    string
	url    string
	st     store.Store
	c      *multihost.Cluster
	host   map[string]*multihost.Host // by node name
	guest  map[string]string          // guest namespace by router name
	vm     map[string]string          // instance name by router name
	router map[string]string          // router name by id
}

// nodeEntry is a node as `node list -o json` prints it.
type nodeEntry struct {
	Name     string   `json:"name"`
	Alive    bool     `json:"alive"`
	Routers  []string `json:"routers"`
	Networks []string `json:"networks"`
}

// newThreeHostWorld boots the three nodes with a serve each, applies the
// topology once all three are registered (so the scheduler spreads it),
// and gives each VM its DHCP lease from whichever node serves its network.
func newThreeHostWorld(t *testing.T) *threeHostWorld {
	t.Helper()
	testworld.RequireRoot(t)
	w := &threeHostWorld{t: t, url: pgtest.Start(t).NewDB(t), bin: buildMdctl(t),
		host: map[string]*multihost.Host{}, guest: map[string]string{}, vm: map[string]string{}, router: map[string]string{}}
	st, err := store.Open("", w.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.st = st
	ctx := context.Background()
	if err := st.SetSetting(ctx, "agent_down_time", "3"); err != nil {
		t.Fatal(err)
	}
	w.c = multihost.New(t, threeHosts, "br-net1", "br-net2", "br-net3")
	for _, h := range w.c.Hosts {
		w.host[h.Name] = h
		h.Start(w.bin, "--data-dir", t.TempDir(), "--db", w.url,
			"serve", "--node", h.Name, "--components", "api,agent,proxy", "--api-listen", "0.0.0.0:8775")
	}
	waitNodes(t, st, len(threeHosts))
	applyTopology(t, st, threeHostTopo)
	for i := 1; i <= 3; i++ {
		r, vm := fmt.Sprintf("r%d", i), fmt.Sprintf("vm%d", i)
		w.router[w.routerID(r)] = r
		w.vm[r] = vm
		in, err := st.GetInstance(ctx, vm)
		if err != nil {
			t.Fatal(err)
		}
		ports, err := st.ListPorts(ctx, store.PortFilter{DeviceIDs: []string{in.ID}})
		if err != nil || len(ports) != 1 {
			t.Fatalf("%s's ports: %v %v", vm, ports, err)
		}
		w.guest[r] = w.c.Guest(fmt.Sprintf("br-net%d", i), ports[0].MACAddress)
	}
	return w
}

func (w *threeHostWorld) routerID(name string) string {
	w.t.Helper()
	r, err := w.st.GetRouter(context.Background(), name)
	if err != nil {
		w.t.Fatal(err)
	}
	return r.ID
}

// nodes is `mdctl node list -o json`, run on host on.
func (w *threeHostWorld) nodes(on *multihost.Host) ([]nodeEntry, error) {
	out, err := on.Run(10*time.Second, w.bin, "--db", w.url, "node", "list", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list []nodeEntry
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("node list: %w\n%s", err, out)
	}
	return list, nil
}

// routersOn is which node's router names, as node list on host on says,
// once every live node's namespaces hold its routers' (and only those),
// and the machine's /run/netns none of them.
func (w *threeHostWorld) routersOn(on *multihost.Host, what string, want func([]nodeEntry) error) map[string]string {
	w.t.Helper()
	where := map[string]string{}
	testworld.WaitFor(w.t, 30*time.Second, what, func() error {
		list, err := w.nodes(on)
		if err != nil {
			return err
		}
		if err := want(list); err != nil {
			return fmt.Errorf("%w; node list: %+v", err, list)
		}
		clear(where)
		for _, n := range list {
			for _, id := range n.Routers {
				where[w.router[id]] = n.Name
			}
			if !n.Alive {
				continue
			}
			if err := w.builtOnlyThere(n); err != nil {
				return err
			}
		}
		return nil
	})
	return where
}

// builtOnlyThere: node n's /run/netns holds the qrouter namespace of each
// router bound to it and of no other; none is in the machine's.
func (w *threeHostWorld) builtOnlyThere(n nodeEntry) error {
	names, err := w.host[n.Name].Namespaces()
	if err != nil {
		return err
	}
	for id := range w.router {
		ns := dataplane.RouterNamespace(id)
		if got, want := slices.Contains(names, ns), slices.Contains(n.Routers, id); got != want {
			return fmt.Errorf("%s has %s: %v, but it hosts %v", n.Name, ns, got, n.Routers)
		}
		if _, err := os.Stat(filepath.Join(dataplane.NetnsDir, ns)); err == nil {
			return fmt.Errorf("%s is in the machine's %s: a node's namespaces leaked", ns, dataplane.NetnsDir)
		}
	}
	return nil
}

// metaData is the guest's meta_data.json through its router, or why not.
func metaData(guest string) (map[string]any, error) {
	c := nsHTTPClient(guest)
	c.Timeout = 2 * time.Second
	resp, err := c.Get("http://169.254.169.254/openstack/latest/meta_data.json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	var md map[string]any
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, fmt.Errorf("%w: %.200s", err, body)
	}
	return md, nil
}

// servedAs polls the guest of router r until its metadata says ok, and
// returns how long that took; the test fails after timeout.
func (w *threeHostWorld) servedAs(r string, timeout time.Duration, what string, ok func(md map[string]any) error) time.Duration {
	w.t.Helper()
	start := time.Now()
	testworld.WaitFor(w.t, timeout, what, func() error {
		md, err := metaData(w.guest[r])
		if err != nil {
			return err
		}
		if md["name"] != w.vm[r] {
			return fmt.Errorf("%s's guest read name %v, want %s", r, md["name"], w.vm[r])
		}
		return ok(md)
	})
	return time.Since(start)
}

func anyMetadata(map[string]any) error { return nil }

// TestThreeHostsScheduleAndFailOver: three nodes on one PostgreSQL share
// the routers and networks, one each, and build them in their own
// namespaces; a VM on a router hosted by node-a reads its own metadata
// with cloud-init's reader through route → node-a's qrouter namespace →
// REDIRECT → proxy → agent → API. A setting changed with mdctl config set
// on node-c changes what VMs served by node-a and node-b read. node-a's
// machine dies (kill -9 of everything on it, its namespaces and links
// gone): once agent_down_time (3 s) passes, its router is on node-b or
// node-c and its VM is served again.
func TestThreeHostsScheduleAndFailOver(t *testing.T) {
	w := newThreeHostWorld(t)
	a, b, c := w.host["node-a"], w.host["node-b"], w.host["node-c"]

	var where map[string]string // router name → node name
	if !t.Run("share", func(t *testing.T) {
		where = w.routersOn(c, "each node hosts one router and one network, built in its own /run/netns", func(list []nodeEntry) error {
			for _, n := range list {
				if !n.Alive || len(n.Routers) != 1 || len(n.Networks) != 1 {
					return fmt.Errorf("%s (alive %v) hosts routers %v and networks %v, want one of each", n.Name, n.Alive, n.Routers, n.Networks)
				}
			}
			return nil
		})
		t.Logf("routers: %v", where)
		for r, g := range w.guest {
			if err := w.c.Lease(g, 30*time.Second); err != nil {
				t.Fatalf("%s's VM: no DHCP lease over the fabric: %v", r, err)
			}
		}
		for r := range w.guest {
			w.servedAs(r, 20*time.Second, r+"'s VM served by "+where[r], anyMetadata)
		}
		onA := routerOf(where, "node-a")
		crawl := testworld.RunCrawl(t, w.guest[onA], "openstack")
		if crawl.Name != w.vm[onA] || crawl.Hostname != w.vm[onA]+".novalocal" {
			t.Errorf("cloud-init read name %q hostname %q through node-a's %s, want %s", crawl.Name, crawl.Hostname, onA, w.vm[onA])
		}
	}) {
		return
	}

	if !t.Run("config set on node-c", func(t *testing.T) {
		set := time.Now()
		if _, err := c.Run(10*time.Second, w.bin, "--db", w.url, "config", "set", "dhcp_domain", "sim.test"); err != nil {
			t.Fatal(err)
		}
		for _, node := range []*multihost.Host{a, b} {
			r := routerOf(where, node.Name)
			w.servedAs(r, 20*time.Second, "dhcp_domain set on node-c seen through "+node.Name, func(md map[string]any) error {
				if want := w.vm[r] + ".sim.test"; md["hostname"] != want {
					return fmt.Errorf("hostname %v, want %s", md["hostname"], want)
				}
				return nil
			})
			t.Logf("config set on node-c: %s's VM served by %s read the new hostname %v after", w.vm[r], node.Name, time.Since(set).Round(time.Millisecond))
		}
	}) {
		return
	}

	t.Run("node-a dies", func(t *testing.T) {
		r := routerOf(where, "node-a")
		killed := time.Now()
		a.Kill()
		moved := w.routersOn(b, r+" moves off the dead node-a", func(list []nodeEntry) error {
			for _, n := range list {
				if n.Name == "node-a" && (n.Alive || len(n.Routers) > 0 || len(n.Networks) > 0) {
					return fmt.Errorf("node-a alive %v, hosting %v and %v", n.Alive, n.Routers, n.Networks)
				}
			}
			return nil
		})
		t.Logf("kill -9 of node-a: %s bound to %s after %v", r, moved[r], time.Since(killed).Round(time.Millisecond))
		if moved[r] != "node-b" && moved[r] != "node-c" {
			t.Fatalf("%s on %q after node-a died", r, moved[r])
		}
		w.servedAs(r, 30*time.Second, w.vm[r]+" served again after node-a died", anyMetadata)
		t.Logf("kill -9 of node-a: %s served again (through %s) after %v (agent_down_time 3s)", w.vm[r], moved[r], time.Since(killed).Round(time.Millisecond))
		crawl := testworld.RunCrawl(t, w.guest[r], "openstack")
		if crawl.Name != w.vm[r] || crawl.Hostname != w.vm[r]+".sim.test" {
			t.Errorf("after the failover cloud-init read name %q hostname %q, want %s", crawl.Name, crawl.Hostname, w.vm[r])
		}
		for other, node := range moved {
			if other != r {
				w.servedAs(other, 10*time.Second, w.vm[other]+" still served by "+node, anyMetadata)
			}
		}
	})
}

// routerOf is the router node hosts in where (router name → node name).
func routerOf(where map[string]string, node string) string {
	for r, n := range where {
		if n == node {
			return r
		}
	}
	return ""
}
