package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/multihost"
	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/store"
)

// Three network nodes, each a simulated machine (internal/multihost: its
// own network namespace, /run/netns, /var/lib, PID namespace and host
// name), one PostgreSQL store, three provider networks whose bridges of
// the same name on every node are one wire, and a VM on each. Each host
// runs two serves, as the README's set-up has them: the network node's
// (agent and proxies; node name node-x, the default data dir) and an API
// (node-x-api); each agent asks its own host's API over TCP
// (nova_metadata_host's default, 127.0.0.1, is each host's own loopback).

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

// tenant is one of the three: a router, its network, and the VM on it.
type tenant struct {
	router, network, vm string // names
	routerID, networkID string
	guest               string // the VM's namespace
}

// threeHostWorld is the running simulation.
type threeHostWorld struct {
	t       *testing.T
	bin     string
	url     string
	st      store.Store
	c       *multihost.Cluster
	host    map[string]*multihost.Host // by node name
	tenants []tenant
}

// nodeEntry is a node as `node list -o json` prints it.
type nodeEntry struct {
	Name       string   `json:"name"`
	Alive      bool     `json:"alive"`
	Components []string `json:"components"`
	Routers    []string `json:"routers"`
	Networks   []string `json:"networks"`
}

// newThreeHostWorld boots the three hosts with their two serves each,
// applies the topology once all are registered (so the scheduler spreads
// it), and puts each VM on its network's wire.
func newThreeHostWorld(t *testing.T) *threeHostWorld {
	t.Helper()
	testworld.RequireRoot(t)
	w := &threeHostWorld{t: t, url: pgtest.Start(t).NewDB(t), bin: buildMdctl(t), host: map[string]*multihost.Host{}}
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
		h.Start(w.bin, "--db", w.url, "--data-dir", "/var/lib/mdctl-api",
			"serve", "--node", h.Name+"-api", "--components", "api", "--api-listen", "0.0.0.0:8775")
		// The default data dir, /var/lib/mdctl, is each host's own.
		h.Start(w.bin, "--db", w.url, "serve", "--node", h.Name, "--components", "agent,proxy")
	}
	waitNodes(t, st, 2*len(threeHosts), nil)
	applyTopology(t, st, threeHostTopo)
	for i := 1; i <= 3; i++ {
		tn := tenant{router: fmt.Sprintf("r%d", i), network: fmt.Sprintf("net%d", i), vm: fmt.Sprintf("vm%d", i)}
		r, err := st.GetRouter(ctx, tn.router)
		if err != nil {
			t.Fatal(err)
		}
		n, err := st.GetNetwork(ctx, tn.network)
		if err != nil {
			t.Fatal(err)
		}
		in, err := st.GetInstance(ctx, tn.vm)
		if err != nil {
			t.Fatal(err)
		}
		ports, err := st.ListPorts(ctx, store.PortFilter{DeviceIDs: []string{in.ID}})
		if err != nil || len(ports) != 1 {
			t.Fatalf("%s's ports: %v %v", tn.vm, ports, err)
		}
		tn.routerID, tn.networkID = r.ID, n.ID
		tn.guest = w.c.Guest(n.Bridge, ports[0].MACAddress)
		w.tenants = append(w.tenants, tn)
	}
	return w
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

// placement is where each tenant's router and DHCP network are, by node
// name, in the tenants' order.
type placement struct{ router, network []string }

// placed waits until node list on host on, its network nodes (those
// running the proxy component) only, satisfies want and every live one's
// /run/netns holds the qrouter and qdhcp namespaces of what it hosts, and
// only those, and returns where things are.
func (w *threeHostWorld) placed(on *multihost.Host, what string, want func([]nodeEntry) error) placement {
	w.t.Helper()
	var p placement
	testworld.WaitFor(w.t, 30*time.Second, what, func() error {
		all, err := w.nodes(on)
		if err != nil {
			return err
		}
		list := slices.DeleteFunc(all, func(n nodeEntry) bool { return !slices.Contains(n.Components, "proxy") })
		if len(list) != len(threeHosts) {
			return fmt.Errorf("network nodes %+v, want %v", list, threeHosts)
		}
		if err := want(list); err != nil {
			return fmt.Errorf("%w; node list: %+v", err, list)
		}
		p = placement{router: make([]string, len(w.tenants)), network: make([]string, len(w.tenants))}
		for _, n := range list {
			for i, tn := range w.tenants {
				if slices.Contains(n.Routers, tn.routerID) {
					p.router[i] = n.Name
				}
				if slices.Contains(n.Networks, tn.networkID) {
					p.network[i] = n.Name
				}
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
	return p
}

// builtOnlyThere: node n's /run/netns holds the qrouter namespace of each
// router bound to it and the qdhcp namespace of each network, and of no
// other; none is in the machine's /run/netns.
func (w *threeHostWorld) builtOnlyThere(n nodeEntry) error {
	names, err := w.host[n.Name].Namespaces()
	if err != nil {
		return err
	}
	for _, tn := range w.tenants {
		for ns, hosted := range map[string]bool{
			dataplane.RouterNamespace(tn.routerID): slices.Contains(n.Routers, tn.routerID),
			dataplane.DHCPNamespace(tn.networkID):  slices.Contains(n.Networks, tn.networkID),
		} {
			if got := slices.Contains(names, ns); got != hosted {
				return fmt.Errorf("%s has %s: %v, but it hosts routers %v and networks %v", n.Name, ns, got, n.Routers, n.Networks)
			}
			if _, err := os.Stat(filepath.Join(dataplane.NetnsDir, ns)); err == nil {
				return fmt.Errorf("%s is in the machine's %s: a node's namespaces leaked", ns, dataplane.NetnsDir)
			}
		}
	}
	return nil
}

// metaData is the guest's meta_data.json through its router, or why not,
// waiting at most timeout for the answer.
func metaData(guest string, timeout time.Duration) (map[string]any, error) {
	c := nsHTTPClient(guest)
	c.Timeout = timeout
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

// servedAs polls tenant i's VM until its metadata is its own and ok
// accepts it, and returns how long that took; the test fails after
// timeout.
func (w *threeHostWorld) servedAs(i int, timeout time.Duration, what string, ok func(md map[string]any) error) time.Duration {
	w.t.Helper()
	tn := w.tenants[i]
	start := time.Now()
	testworld.WaitFor(w.t, timeout, what, func() error {
		md, err := metaData(tn.guest, 2*time.Second)
		if err != nil {
			return err
		}
		if md["name"] != tn.vm {
			return fmt.Errorf("%s read name %v", tn.vm, md["name"])
		}
		return ok(md)
	})
	return time.Since(start)
}

func anyMetadata(map[string]any) error { return nil }

// hostnameIs accepts metadata whose hostname is want.
func hostnameIs(want string) func(map[string]any) error {
	return func(md map[string]any) error {
		if md["hostname"] != want {
			return fmt.Errorf("hostname %v, want %s", md["hostname"], want)
		}
		return nil
	}
}

// crawlAs runs cloud-init's OpenStack reader in tenant i's VM and checks
// it read that VM's name and hostname.
func (w *threeHostWorld) crawlAs(t *testing.T, i int, hostname, how string) {
	t.Helper()
	tn := w.tenants[i]
	if c := testworld.RunCrawl(t, tn.guest, "openstack"); c.Name != tn.vm || c.Hostname != hostname {
		t.Errorf("%s cloud-init read name %q hostname %q, want %s %s", how, c.Name, c.Hostname, tn.vm, hostname)
	}
}

// TestThreeHostsScheduleAndFailOver: three nodes on one PostgreSQL share
// the routers and DHCP networks, one of each apiece, and build them in
// their own namespaces; VMs lease their addresses from whichever node
// serves their network, and the VM on node-a's router reads its own
// metadata with cloud-init's reader through route → node-a's qrouter
// namespace → REDIRECT → proxy → agent → node-a's API. A setting changed
// with mdctl config set on node-c changes what VMs served by node-a and
// node-b read. Then every agent's nova_metadata_host lists node-a's API
// first, node-b's and node-c's after, on the management network. node-a's
// machine dies (its cables pulled, every process on it killed, its
// namespaces gone): the VMs on node-b's and node-c's routers are answered
// by the next API within cloud-init's 10 s, and their agents count the
// failover; once agent_down_time (3 s) passes, node-a's router and network
// are on node-b or node-c, its router's VM is served again and a VM on its
// network gets a new lease.
func TestThreeHostsScheduleAndFailOver(t *testing.T) {
	w := newThreeHostWorld(t)
	a, b, c := w.host["node-a"], w.host["node-b"], w.host["node-c"]

	var at placement
	if !t.Run("share", func(t *testing.T) {
		at = w.placed(c, "each node hosts one router and one network, built in its own /run/netns", func(list []nodeEntry) error {
			for _, n := range list {
				if !n.Alive || len(n.Routers) != 1 || len(n.Networks) != 1 {
					return fmt.Errorf("%s (alive %v) hosts routers %v and networks %v, want one of each", n.Name, n.Alive, n.Routers, n.Networks)
				}
			}
			return nil
		})
		t.Logf("routers on %v, networks on %v", at.router, at.network)
		for i, tn := range w.tenants {
			if err := w.c.Lease(tn.guest, 30*time.Second); err != nil {
				t.Fatalf("%s: no DHCP lease over the fabric from %s: %v", tn.vm, at.network[i], err)
			}
			w.servedAs(i, 20*time.Second, tn.vm+" served by "+at.router[i], anyMetadata)
		}
		i := slices.Index(at.router, "node-a")
		w.crawlAs(t, i, w.tenants[i].vm+".novalocal", "through node-a's "+w.tenants[i].router)
	}) {
		return
	}

	if !t.Run("config set on node-c", func(t *testing.T) {
		set := time.Now()
		if _, err := c.Run(10*time.Second, w.bin, "--db", w.url, "config", "set", "dhcp_domain", "sim.test"); err != nil {
			t.Fatal(err)
		}
		for _, node := range []*multihost.Host{a, b} {
			i := slices.Index(at.router, node.Name)
			vm := w.tenants[i].vm
			w.servedAs(i, 20*time.Second, "dhcp_domain set on node-c, seen through "+node.Name, hostnameIs(vm+".sim.test"))
			t.Logf("config set on node-c: %s, served by %s, read the new hostname %v after", vm, node.Name, time.Since(set).Round(time.Millisecond))
		}
	}) {
		return
	}

	// From here every agent asks node-a's API first, then node-b's, then
	// node-c's, over the management network.
	apis := strings.Join([]string{a.Addr, b.Addr, c.Addr}, ",")
	if !t.Run("API replicas", func(t *testing.T) {
		if _, err := b.Run(10*time.Second, w.bin, "--db", w.url, "config", "set", "nova_metadata_host", apis); err != nil {
			t.Fatal(err)
		}
		for i := range w.tenants {
			w.servedAs(i, 10*time.Second, w.tenants[i].vm+" served with nova_metadata_host "+apis, anyMetadata)
		}
	}) {
		return
	}

	t.Run("node-a dies", func(t *testing.T) {
		r, n := slices.Index(at.router, "node-a"), slices.Index(at.network, "node-a")
		failovers := map[*multihost.Host]float64{b: w.apiFailovers(t, b), c: w.apiFailovers(t, c)}
		killed := time.Now()
		a.Kill()
		// The VMs on node-b's and node-c's routers, meanwhile: their
		// agents' first API is gone, silent (its cables are pulled); the
		// next one answers the same request, within cloud-init's 10 s.
		var replicas sync.WaitGroup
		for i, node := range at.router {
			if node == "node-a" {
				continue
			}
			replicas.Go(func() {
				md, err := metaData(w.tenants[i].guest, 10*time.Second)
				if err != nil || md["name"] != w.tenants[i].vm {
					t.Errorf("%s, served by %s, right after node-a's API died: %v %v", w.tenants[i].vm, node, md["name"], err)
					return
				}
				t.Logf("node-a's API died: %s's first request, through %s, answered %v after the kill", w.tenants[i].vm, node, time.Since(killed).Round(time.Millisecond))
			})
		}
		defer func() {
			replicas.Wait()
			for h, before := range failovers {
				if got := w.apiFailovers(t, h); got <= before {
					t.Errorf("%s's agent counted %v API failovers, %v before node-a died: it did not ask node-a's API first", h.Name, got, before)
				}
			}
		}()
		moved := w.placed(b, "node-a's router and network move to live nodes", func(list []nodeEntry) error {
			for _, n := range list {
				if n.Name == "node-a" && (n.Alive || len(n.Routers) > 0 || len(n.Networks) > 0) {
					return fmt.Errorf("node-a alive %v, hosting %v and %v", n.Alive, n.Routers, n.Networks)
				}
			}
			return nil
		})
		t.Logf("node-a's machine died: %s bound to %s, %s to %s, %v after", w.tenants[r].router, moved.router[r],
			w.tenants[n].network, moved.network[n], time.Since(killed).Round(time.Millisecond))
		w.servedAs(r, 30*time.Second, w.tenants[r].vm+" served again after node-a died", anyMetadata)
		t.Logf("node-a's machine died: %s served again (through %s) %v after (agent_down_time 3s)",
			w.tenants[r].vm, moved.router[r], time.Since(killed).Round(time.Millisecond))
		w.crawlAs(t, r, w.tenants[r].vm+".sim.test", "after the failover to "+moved.router[r])
		for i, node := range moved.router {
			if i != r {
				w.servedAs(i, 10*time.Second, w.tenants[i].vm+" still served by "+node, anyMetadata)
			}
		}
		// The VM on node-a's network, rebooted, leases from the node that
		// took the network over.
		guest := w.tenants[n].guest
		w.c.Unlease(guest)
		if err := w.c.Lease(guest, 30*time.Second); err != nil {
			t.Fatalf("%s: no new DHCP lease from %s after node-a died: %v", w.tenants[n].vm, moved.network[n], err)
		}
		w.servedAs(n, 10*time.Second, w.tenants[n].vm+" served after its new lease", anyMetadata)
	})
}

// apiFailovers is mdctl_agent_api_failovers_total of host h's network
// node serve, read from its admin socket.
func (w *threeHostWorld) apiFailovers(t *testing.T, h *multihost.Host) float64 {
	t.Helper()
	out, err := h.Run(10*time.Second, "curl", "-sf", "--unix-socket", "/var/lib/mdctl/"+admin.SocketName, "http://admin/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(out, "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && strings.HasPrefix(name, events.APIFailovers) {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", h.Name, line, err)
			}
			sum += v
		}
	}
	return sum
}
