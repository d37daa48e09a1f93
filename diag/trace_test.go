package diag

import (
	"bytes"
	"context"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

const isolatedTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
networks:
  - name: iso1
    project: demo
    cidr: 10.90.2.0/24
instances:
  - name: vm2
    project: demo
    network: iso1
    ip: 10.90.2.5
`

// trace runs one trace, logs its wall time and text, and returns it.
func trace(t *testing.T, o Options, ref string) Report {
	t.Helper()
	start := time.Now()
	r := Trace(context.Background(), o, ref)
	wall := time.Since(start)
	var b bytes.Buffer
	r.WriteText(&b, false)
	t.Logf("trace %s: wall %v\n%s", ref, wall, b.String())
	return r
}

// waitHealthy traces until every hop passes: serve builds the data plane
// and opens its listeners asynchronously.
func waitHealthy(t *testing.T, o Options, ref string) Report {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var r Report
	for time.Now().Before(deadline) {
		if r = Trace(context.Background(), o, ref); r.OK {
			return trace(t, o, ref)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var b bytes.Buffer
	r.WriteText(&b, false)
	t.Fatalf("%s not healthy within 15s:\n%s", ref, b.String())
	return r
}

// wantFailure checks the first failing hop and that it carries a hint.
func wantFailure(t *testing.T, r Report, hop string, detailHas ...string) {
	t.Helper()
	if r.OK || r.FailedHop != hop {
		t.Fatalf("ok=%v failed_hop=%q, want %q", r.OK, r.FailedHop, hop)
	}
	h := r.Hop(hop)
	if h.Hint == "" {
		t.Errorf("%s failed without a hint", hop)
	}
	for _, s := range detailHas {
		if !strings.Contains(h.Detail+" "+h.Hint, s) {
			t.Errorf("%s: detail %q / hint %q lacks %q", hop, h.Detail, h.Hint, s)
		}
	}
	if len(r.Hops) != len(HopNames) {
		t.Errorf("%d hops, want %d", len(r.Hops), len(HopNames))
	}
}

func TestTraceHealthyRouter(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	api := serveAll(w)
	w.LabUp()
	r := waitHealthy(t, opts(w, api), "vm1")
	if r.Mode != ModeRouter || !strings.Contains(r.ModeReason, "routed") {
		t.Errorf("mode %q (%s), want router because routed", r.Mode, r.ModeReason)
	}
	for i, h := range r.Hops {
		if h.Name != HopNames[i] || !h.OK || h.Detail == "" {
			t.Errorf("hop %d: %+v", i, h)
		}
	}
	if !labGuestTraced(r) || !strings.Contains(r.Hop(HopRoute).Detail, "via 10.90.1.1") {
		t.Errorf("route hop did not read the lab guest %s: %+v", w.GuestNS("vm1"), r.Hop(HopRoute))
	}
	// Every probe carries its own request id.
	seen := map[string]bool{}
	for _, h := range r.Hops {
		for _, id := range h.RequestIDs {
			if !strings.HasPrefix(id, "trace-") || seen[id] {
				t.Errorf("request id %q reused or malformed", id)
			}
			seen[id] = true
		}
	}
	if len(seen) < 5 {
		t.Errorf("%d probe request ids, want one per request (>= 5)", len(seen))
	}
	wantProbe(t, r, HopProxy, HopAgent, HopAPI)
	// The same trace by id names the instance.
	if r2 := trace(t, opts(w, api), r.InstanceID); !r2.OK || r2.Instance != "vm1" {
		t.Errorf("trace by id: ok=%v instance=%q", r2.OK, r2.Instance)
	}
}

// TestTraceNoLabGuest: an instance with no lab guest and no VM on its port
// fails at the route hop (trace used to print "OK: every hop passed" for
// it), naming what to attach; the hops trace can check from outside pass.
func TestTraceNoLabGuest(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	api := serveAll(w)
	o := opts(w, api)
	others := []string{HopNamespace, HopIPTables, HopProxy, HopSocket, HopAgent, HopAPI, HopMetadata}
	untilHops(o, "vm1", others...)
	r := trace(t, o, "vm1")
	wantFailure(t, r, HopRoute, "no guest is attached", dataplane.TapName(portOf(t, w, "vm1").ID))
	if h := r.Hop(HopRoute); !strings.Contains(h.Hint, "mdctl lab up") || !strings.Contains(h.Hint, "instance show vm1 --libvirt") {
		t.Errorf("route hint: %q", h.Hint)
	}
	for _, name := range others {
		if h := r.Hop(name); !h.OK {
			t.Errorf("%s hop: %+v", name, h)
		}
	}
	var b bytes.Buffer
	r.WriteText(&b, false)
	if strings.Contains(b.String(), "every hop passed") || !strings.Contains(b.String(), "FAIL at route") {
		t.Errorf("verdict:\n%s", b.String())
	}
	if r.Probe == nil || !strings.Contains(r.Probe.Skipped, "no lab guest") || r.Probe.RequestID != "" {
		t.Errorf("probe without a guest: %+v", r.Probe)
	}
}

// portOf is the instance's first port.
func portOf(t *testing.T, w *testworld.World, instance string) store.Port {
	t.Helper()
	ps, err := w.Store.ListPorts(context.Background(), store.PortFilter{DeviceIDs: []string{w.Instance(instance).ID}})
	if err != nil || len(ps) == 0 {
		t.Fatalf("ports of %s: %v %v", instance, ps, err)
	}
	return ps[0]
}

// TestTraceFaults injects one fault at a time into a healthy routed world
// and checks the first failing hop and its hint.
func TestTraceFaults(t *testing.T) {
	testworld.RequireRoot(t)
	tests := []struct {
		name   string
		inject func(t *testing.T, w *testworld.World)
		hop    string
		says   []string
		fix    bool // Fix brings the chain back
	}{
		{"guest route deleted", func(t *testing.T, w *testworld.World) {
			inNS(t, w.GuestNS("vm1"), "ip", "route", "del", "169.254.169.254/32")
			inNS(t, w.GuestNS("vm1"), "ip", "route", "del", "default")
		}, HopRoute, []string{"no route", "ip route replace 169.254.169.254/32 via 10.90.1.1"}, true},
		{"route via a wrong gateway", func(t *testing.T, w *testworld.World) {
			inNS(t, w.GuestNS("vm1"), "ip", "route", "replace", "169.254.169.254/32", "via", "10.90.1.99", "dev", "eth0")
		}, HopRoute, []string{"via 10.90.1.99, not 10.90.1.1"}, true},
		{"link-local route shadows the host route", func(t *testing.T, w *testworld.World) {
			inNS(t, w.GuestNS("vm1"), "ip", "route", "del", "169.254.169.254/32")
			inNS(t, w.GuestNS("vm1"), "ip", "route", "add", "169.254.0.0/16", "dev", "eth0", "scope", "link")
		}, HopRoute, []string{"on-link", "169.254.0.0/16"}, false},
		{"router namespace deleted", func(t *testing.T, w *testworld.World) {
			if err := dataplane.DeleteNamespace(w.RouterNS("r1")); err != nil {
				t.Fatal(err)
			}
		}, HopNamespace, []string{"does not exist", "--fix"}, true},
		{"REDIRECT rule deleted", func(t *testing.T, w *testworld.World) {
			inNS(t, w.RouterNS("r1"), "iptables", "-t", "nat", "-D", dataplane.ChainPrerouting,
				"-d", "169.254.169.254/32", "-i", "qr-+", "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "REDIRECT", "--to-ports", "9697")
		}, HopIPTables, []string{"missing", "REDIRECT", "--fix", "iptables -t nat -S"}, true},
		{"ACCEPT inserted ahead of the REDIRECT", func(t *testing.T, w *testworld.World) {
			inNS(t, w.RouterNS("r1"), "iptables", "-t", "nat", "-I", "PREROUTING", "1",
				"-d", "169.254.169.254/32", "-p", "tcp", "--dport", "80", "-j", "ACCEPT")
		}, HopIPTables, []string{"nat PREROUTING rule 1 ACCEPTs", "iptables -t nat -D PREROUTING 1"}, false},
		{"INPUT drops the redirected request", func(t *testing.T, w *testworld.World) {
			inNS(t, w.RouterNS("r1"), "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "9697", "-j", "DROP")
		}, HopIPTables, []string{"filter INPUT rule 1 DROPs", "iptables -t filter -D INPUT 1"}, false},
		{"mangle ACCEPT ahead of the MARK", func(t *testing.T, w *testworld.World) {
			inNS(t, w.RouterNS("r1"), "iptables", "-t", "mangle", "-I", "PREROUTING", "1", "-i", "qr-+", "-j", "ACCEPT")
		}, HopIPTables, []string{"mangle PREROUTING rule 1 ACCEPTs", "iptables -t mangle -D PREROUTING 1"}, false},
		{"socket removed", func(t *testing.T, w *testworld.World) {
			if err := os.Remove(filepath.Join(w.Dir, server.AgentSocketName)); err != nil {
				t.Fatal(err)
			}
		}, HopSocket, []string{"no agent socket", "mdctl serve"}, false},
		{"socket mode 0000", func(t *testing.T, w *testworld.World) {
			if err := os.Chmod(filepath.Join(w.Dir, server.AgentSocketName), 0); err != nil {
				t.Fatal(err)
			}
		}, HopSocket, []string{"mode 0000", "chmod 0660"}, true},
		{"guest IP not on any port", func(t *testing.T, w *testworld.World) {
			ctx := context.Background()
			in, err := w.Store.InstanceView(ctx, "vm1")
			if err != nil {
				t.Fatal(err)
			}
			p := in.Ports[0].Port
			p.FixedIPs[0].IPAddress = "10.90.1.50" // the guest still has .5
			if err := w.Store.PutPort(ctx, p); err != nil {
				t.Fatal(err)
			}
		}, HopAgent, []string{"0 ports hold 10.90.1.5"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, testworld.RoutedTopo)
			api := serveAll(w)
			w.LabUp()
			o := opts(w, api)
			waitHealthy(t, o, "vm1")
			tt.inject(t, w)
			r := trace(t, o, "vm1")
			wantFailure(t, r, tt.hop, tt.says...)
			if !tt.fix {
				return
			}
			var out bytes.Buffer
			if err := Fix(context.Background(), o, r, &out); err != nil {
				t.Fatalf("fix: %v\n%s", err, out.String())
			}
			t.Logf("fix said:\n%s", out.String())
			if out.Len() == 0 {
				t.Error("fix said nothing about what it does")
			}
			waitHealthy(t, o, "vm1")
		})
	}
}

// TestTraceProxyGone: the data plane is there but no serve runs a proxy.
func TestTraceProxyGone(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	ctx := context.Background()
	stored, _ := w.Store.Settings(ctx)
	cfg, err := store.ParseConfig(stored, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := server.PlanFromStore(ctx, w.Store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := dataplane.NewReconciler(w.Dataplane).Apply(ctx, d); err != nil {
		t.Fatal(err)
	}
	api, _ := w.StartServe(testworld.ServeOptions{Components: []string{server.ComponentAPI, server.ComponentAgent}})
	w.LabUp()
	o := opts(w, "http://"+api)
	untilHops(o, "vm1", HopSocket) // until the agent's socket is up
	r := trace(t, o, "vm1")
	wantFailure(t, r, HopProxy, "nothing listens on 0.0.0.0:9697", "mdctl serve", "systemctl status mdctl")
	for _, name := range []string{HopSocket, HopAgent, HopAPI, HopMetadata} {
		if !r.Hop(name).OK {
			t.Errorf("hop %s after the proxy failed: %+v", name, r.Hop(name))
		}
	}
}

// splitWorld runs the API and the agent (with the proxy) as separate
// serves, as on separate nodes; agentSet is the agent's own --set.
func splitWorld(t *testing.T, apiSet, agentSet map[string]string) (w *testworld.World, o Options, stopAPI, stopAgent func()) {
	w = newWorld(t, testworld.RoutedTopo)
	api, stopAPI := w.StartServe(testworld.ServeOptions{Dir: t.TempDir(), Components: []string{server.ComponentAPI}, Overrides: apiSet})
	set := map[string]string{"nova_metadata_port": testworld.Port(api)}
	maps.Copy(set, agentSet)
	_, stopAgent = w.StartServe(testworld.ServeOptions{Components: []string{server.ComponentAgent, server.ComponentProxy}, Overrides: set})
	w.LabUp()
	return w, opts(w, "http://"+api), stopAPI, stopAgent
}

func TestTraceAgentStopped(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	api, _ := w.StartServe(testworld.ServeOptions{Components: []string{server.ComponentAPI, server.ComponentProxy}})
	// The agent runs from a data dir of its own; the proxies reach its
	// socket through a link, as with a shared state_path.
	agentDir := t.TempDir()
	if err := os.Symlink(filepath.Join(agentDir, server.AgentSocketName), filepath.Join(w.Dir, server.AgentSocketName)); err != nil {
		t.Fatal(err)
	}
	_, stopAgent := w.StartServe(testworld.ServeOptions{Dir: agentDir, Components: []string{server.ComponentAgent}, Overrides: map[string]string{"nova_metadata_port": testworld.Port(api)}})
	w.LabUp()
	o := opts(w, "http://"+api)
	waitHealthy(t, o, "vm1")
	stopAgent()
	r := trace(t, o, "vm1")
	wantFailure(t, r, HopSocket, "mdctl serve", "systemctl status mdctl")
	if h := r.Hop(HopAgent); h.OK {
		t.Errorf("agent hop passed with the agent stopped: %+v", h)
	}
	if h := r.Hop(HopProxy); !h.OK {
		t.Errorf("the proxy still answers (5xx) with the agent gone: %+v", h)
	}
	wantProbe(t, r, HopProxy)
}

// wantProbe checks the end-to-end probe: a proxy request id, exactly the
// hops named (each also in that hop's evidence), per-hop figures >= 0
// that add up to no more than the whole.
func wantProbe(t *testing.T, r Report, hops ...string) {
	t.Helper()
	p := r.Probe
	if p == nil || p.Skipped != "" {
		t.Fatalf("no probe: %+v", p)
	}
	if !strings.HasPrefix(p.RequestID, "req-") || !strings.HasPrefix(p.Path, "/openstack/trace-") {
		t.Errorf("probe request id %q path %q, want the proxy's req-… id and a unique path", p.RequestID, p.Path)
	}
	if len(p.Hops) != len(hops) {
		t.Errorf("probe hops %v, want exactly %v", p.Hops, hops)
	}
	sum := 0.0
	for _, h := range hops {
		v, ok := p.Hops[h]
		if !ok || v < 0 {
			t.Errorf("probe hop %s: %v (present %v), want >= 0", h, v, ok)
		}
		sum += v
		if ev := strings.Join(r.Hop(h).Evidence, "\n"); !strings.Contains(ev, "probe "+p.RequestID) {
			t.Errorf("%s hop evidence lacks the probe: %q", h, ev)
		}
	}
	if sum > p.TotalMS+1e-6 {
		t.Errorf("per-hop %v sum to %v, more than the total %v", p.Hops, sum, p.TotalMS)
	}
	var b bytes.Buffer
	r.WriteText(&b, false)
	if !strings.Contains(b.String(), "probe "+p.RequestID+": ") {
		t.Errorf("text lacks the probe line:\n%s", b.String())
	}
}

func TestTraceAPIStopped(t *testing.T) {
	_, o, stopAPI, _ := splitWorld(t, nil, nil)
	waitHealthy(t, o, "vm1")
	stopAPI()
	r := trace(t, o, "vm1")
	wantFailure(t, r, HopAPI, "not reachable", "mdctl serve", "systemctl status mdctl")
	if !r.Hop(HopAgent).OK {
		t.Errorf("the agent resolved the port; its hop should pass: %+v", r.Hop(HopAgent))
	}
}

// One of two listed API replicas down is a warning on the api hop, which
// passes on the other; both down fails it, naming each.
func TestTraceAPIReplicaDown(t *testing.T) {
	_, o, stopAPI, _ := splitWorld(t, nil, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now: connect is refused
	live := strings.TrimPrefix(o.APIURLs[0], "http://")
	o.APIURLs = []string{"http://" + dead, o.APIURLs[0]}
	r := waitHealthy(t, o, "vm1")
	if w := r.Hop(HopAPI).Warnings; len(w) != 1 || !strings.Contains(w[0], "API replica down at "+dead+": ") {
		t.Fatalf("api hop warnings %q, want one naming %s", w, dead)
	}
	var b bytes.Buffer
	r.WriteText(&b, false)
	if !strings.Contains(b.String(), "\n    warning: API replica down at "+dead) {
		t.Errorf("the text report lacks the warning:\n%s", b.String())
	}
	stopAPI()
	r = trace(t, o, "vm1")
	wantFailure(t, r, HopAPI, "not reachable at "+dead+": ", "; "+live+": ")
}

func TestTraceSecretMismatch(t *testing.T) {
	// The API keeps the stored secret; the agent signs with its own.
	_, o, _, _ := splitWorld(t, nil, map[string]string{"metadata_proxy_shared_secret": "other"})
	untilHops(o, "vm1", HopProxy, HopSocket)
	r := trace(t, o, "vm1")
	wantFailure(t, r, HopAPI, "secret mismatch", "metadata_proxy_shared_secret", logHint(r.Hop(HopAgent).RequestIDs...))
	if !strings.Contains(r.Hop(HopAPI).Detail, "agent") {
		t.Errorf("the mismatch should name the agent's side: %s", r.Hop(HopAPI).Detail)
	}
	// Only a setting fixes this: --fix says so and changes none.
	var fixed bytes.Buffer
	if err := Fix(context.Background(), o, r, &fixed); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fixed.String(), "settings are the operator's to change") {
		t.Errorf("fix does not leave the setting to the operator:\n%s", fixed.String())
	}

	// The reverse: the API runs with its own secret; this trace's (the
	// stored one) is the agent's.
	_, o2, _, _ := splitWorld(t, map[string]string{"metadata_proxy_shared_secret": "api-only"}, nil)
	untilHops(o2, "vm1", HopProxy, HopSocket)
	r = trace(t, o2, "vm1")
	wantFailure(t, r, HopAPI, "secret mismatch", "refused a signature", "and the agent's too", logHint(r.Hop(HopAPI).RequestIDs...))
}

func TestTraceInstanceDeleted(t *testing.T) {
	w := newWorld(t, testworld.RoutedTopo)
	api := serveAll(w)
	w.LabUp()
	o := opts(w, api)
	r0 := waitHealthy(t, o, "vm1")
	if err := w.Store.DeleteInstance(context.Background(), r0.InstanceID); err != nil {
		t.Fatal(err)
	}
	r := trace(t, o, "vm1")
	if r.OK || !strings.Contains(r.Error, "not found") || r.Hint == "" {
		t.Fatalf("ok=%v error=%q hint=%q, want instance not found with a hint", r.OK, r.Error, r.Hint)
	}
}

func TestTraceIsolated(t *testing.T) {
	t.Run("both off", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, isolatedTopo)
		api := serveAll(w)
		w.LabUp()
		untilHops(opts(w, api), "vm2", HopSocket) // until the agent's socket is up
		r := trace(t, opts(w, api), "vm2")
		wantFailure(t, r, HopRoute, "enable_isolated_metadata", "force_metadata")
		if r.Mode != ModeNone || !strings.Contains(r.ModeReason, "both off") {
			t.Errorf("mode %q (%s), want none: both settings off", r.Mode, r.ModeReason)
		}
	})
	t.Run("isolated metadata on", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, isolatedTopo)
		w.Set("enable_isolated_metadata", "true")
		api := serveAll(w)
		guests := w.LabUp()
		o := opts(w, api)
		r := waitHealthy(t, o, "vm2")
		if r.Mode != ModeDHCP || !strings.Contains(r.ModeReason, "enable_isolated_metadata is on") {
			t.Errorf("mode %q (%s), want dhcp because of enable_isolated_metadata", r.Mode, r.ModeReason)
		}
		// The DHCP port loses its metadata address.
		in, _ := w.Store.InstanceView(context.Background(), "vm2")
		ports, _ := w.Store.ListPorts(context.Background(), store.PortFilter{NetworkIDs: []string{in.Ports[0].Port.NetworkID}, DeviceOwners: []string{store.OwnerDHCP}})
		if len(ports) != 1 {
			t.Fatalf("%d DHCP ports", len(ports))
		}
		ns := dataplane.DHCPNamespace(in.Ports[0].Port.NetworkID)
		inNS(t, ns, "ip", "addr", "del", "169.254.169.254/32", "dev", dataplane.DHCPInterfaceName(ports[0].ID))
		r = trace(t, o, "vm2")
		wantFailure(t, r, HopIPTables, "169.254.169.254/32", "ip addr add")
		var out bytes.Buffer
		if err := Fix(context.Background(), o, r, &out); err != nil {
			t.Fatal(err)
		}
		waitHealthy(t, o, "vm2")
		if _, ok := guests["vm2"]; !ok {
			t.Error("no lab guest for vm2")
		}
	})
}

func TestTraceIPv6(t *testing.T) {
	w := newWorld(t, `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: r6, project: demo}
networks:
  - name: net6
    project: demo
    cidr: 10.90.6.0/24
    ipv6_cidr: fd00:90:6::/64
    router: r6
instances:
  - {name: vm6, project: demo, network: net6, ip: 10.90.6.5}
`)
	api := serveAll(w)
	w.LabUp()
	o := opts(w, api)
	r := waitHealthy(t, o, "vm6")
	if !strings.Contains(r.Hop(HopIPTables).Detail, "IPv6") {
		t.Skipf("dataplane has no IPv6 path for this router yet: %s", r.Hop(HopIPTables).Detail)
	}
	inNS(t, w.RouterNS("r6"), "ip6tables", "-t", "nat", "-D", dataplane.ChainPrerouting,
		"-d", "fe80::a9fe:a9fe/128", "-i", "qr-+", "-p", "tcp", "-m", "tcp", "--dport", "80", "-j", "REDIRECT", "--to-ports", "9697")
	r = trace(t, o, "vm6")
	wantFailure(t, r, HopIPTables, "ip6tables -t nat: missing", "REDIRECT", "ip6tables -t nat -S")
	for _, name := range []string{HopRoute, HopNamespace, HopProxy, HopSocket, HopAgent, HopAPI, HopMetadata} {
		if !r.Hop(name).OK {
			t.Errorf("hop %s failed with only the IPv6 rule gone: %+v", name, r.Hop(name))
		}
	}
}

// TestFixTouchesOnlyTracedGuest: --fix on vm1's broken route rebuilds
// vm1's guest and leaves vm2's, broken on purpose here, as it is.
func TestFixTouchesOnlyTracedGuest(t *testing.T) {
	testworld.RequireRoot(t)
	w := newWorld(t, testworld.RoutedTopo)
	api := serveAll(w)
	w.LabUp()
	o := opts(w, api)
	waitHealthy(t, o, "vm1")
	for _, vm := range []string{"vm1", "vm2"} {
		inNS(t, w.GuestNS(vm), "ip", "route", "del", "169.254.169.254/32")
		inNS(t, w.GuestNS(vm), "ip", "route", "del", "default")
	}
	r := trace(t, o, "vm1")
	wantFailure(t, r, HopRoute, "no route")
	var out bytes.Buffer
	if err := Fix(context.Background(), o, r, &out); err != nil {
		t.Fatalf("fix: %v\n%s", err, out.String())
	}
	t.Logf("fix said:\n%s", out.String())
	waitHealthy(t, o, "vm1")
	if r := trace(t, o, "vm2"); r.Hop(HopRoute).OK {
		t.Errorf("fix of vm1 repaired vm2's route too: %s", r.Hop(HopRoute).Detail)
	}
}
