package targets

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// TestSeedLabGuests: the lab seed puts LabPerNetwork instances on each
// /24 behind one router, and the guests picked out of it have their own
// addresses, gateways and distinct namespace and interface names.
func TestSeedLabGuests(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mdctl.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n = 2*LabPerNetwork + 10
	ids, err := SeedLab(ctx, st, n, "0e1d0000-0000-4000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("seeded %d ids, want %d", len(ids), n)
	}
	nets, err := st.ListNetworks(ctx)
	if err != nil || len(nets) != 3 {
		t.Fatalf("networks: %d, %v; want 3", len(nets), err)
	}
	pick := map[string]bool{ids[0]: true, ids[LabPerNetwork-1]: true, ids[LabPerNetwork]: true, ids[n-1]: true}
	snap, err := store.NewLive(st, nil).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Config.SharedSecret != SharedSecret || snap.Config.RateLimitBaseQueries != 100000000 || !snap.Config.RateLimitEnabled {
		t.Errorf("settings: secret %q, limiter on %v at %d", snap.Config.SharedSecret, snap.Config.RateLimitEnabled, snap.Config.RateLimitBaseQueries)
	}
	guests, err := server.LabGuests(ctx, onlyInstances{st, pick}, snap.Config)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ addr, gw string }{
		ids[0]:               {"10.90.0.2/24", "10.90.0.1"},
		ids[LabPerNetwork-1]: {"10.90.0.251/24", "10.90.0.1"},
		ids[LabPerNetwork]:   {"10.90.1.2/24", "10.90.1.1"},
		ids[n-1]:             {"10.90.2.11/24", "10.90.2.1"},
	}
	if len(guests) != len(want) {
		t.Fatalf("got %d guests, want %d", len(guests), len(want))
	}
	names, taps := map[string]bool{}, map[string]bool{}
	for _, g := range guests {
		w, ok := want[g.InstanceID]
		if !ok {
			t.Fatalf("guest for unpicked instance %s", g.InstanceID)
		}
		if len(g.Addrs) != 1 || g.Addrs[0] != w.addr || g.Gateway != w.gw {
			t.Errorf("guest %s: addrs %v gateway %q, want %s via %s", g.InstanceName, g.Addrs, g.Gateway, w.addr, w.gw)
		}
		names[dataplane.GuestNamespace("mdbx-", g)] = true
		taps[dataplane.TapName(g.PortID)] = true
	}
	if len(names) != len(guests) || len(taps) != len(guests) {
		t.Errorf("namespace or tap names collide: %v %v", names, taps)
	}
}

var updateGolden = flag.Bool("update", false, "rewrite testdata golden files")

// TestNeutronHAProxyConfig: the generated file is neutron's template with
// the listener, server and resource filled in (golden), and a resource
// neutron does not proxy is refused.
func TestNeutronHAProxyConfig(t *testing.T) {
	got, err := NeutronHAProxy{Bind: "127.0.0.1:9697", Server: "/run/md.sock", Resource: "Router", ResourceID: routerID}.Config()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "haproxy-neutron-router.cfg")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("config differs from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
	net, err := NeutronHAProxy{Bind: "169.254.169.254:80", Server: "/run/md.sock", Resource: "Network", ResourceID: "n1"}.Config()
	if err != nil || !strings.Contains(net, "del-header X-Neutron-Router-ID\n") || !strings.Contains(net, "set-header X-Neutron-Network-ID n1\n") {
		t.Errorf("network proxy config (%v):\n%s", err, net)
	}
	if _, err := (NeutronHAProxy{Bind: "x:1", Server: "/s", Resource: "Port", ResourceID: "p"}).Config(); err == nil {
		t.Error("a Port resource was accepted")
	}
}

// TestHAProxyAcceptsConfig: haproxy itself checks the generated file.
func TestHAProxyAcceptsConfig(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skipf("no haproxy (%s)", rig.InstallWrkHAProxy)
	}
	path, err := NeutronHAProxy{Bind: "127.0.0.1:9697", Server: "127.0.0.1:8775", Resource: "Router", ResourceID: routerID}.Write(t.TempDir(), "haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
}

func TestCheckCrawl(t *testing.T) {
	g := labGuest{NS: "g1", InstanceID: "i-1"}
	tests := []struct {
		name string
		out  string
		err  error
		ok   bool
	}{
		{"own id", `{"instance_id": "i-1"}`, nil, true},
		{"own id after noise", "warning\n{\"instance_id\": \"i-1\"}\n", nil, true},
		{"someone else's", `{"instance_id": "i-2"}`, nil, false},
		{"reader error", `{"error": "UrlError: 503"}`, nil, false},
		{"exit status", `{"instance_id": "i-1"}`, errors.New("exit status 1"), false},
		{"no json", "Traceback", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkCrawl(g, []byte(tc.out), tc.err); (err == nil) != tc.ok {
				t.Errorf("checkCrawl(%q, %v) = %v, want ok=%v", tc.out, tc.err, err, tc.ok)
			}
		})
	}
}

func TestGoals(t *testing.T) {
	line := func(target string, vsBare, peerRate, peerCPU float64, p99 time.Duration, rss uint64) rig.Line {
		return rig.Line{Row: rig.Row{Target: target, Mode: rig.KeepAlive, Path: PathMetaData, Wrk: rig.WrkResult{P99: p99}, PeakRSS: rss},
			VsBare: vsBare, PeerRate: peerRate, PeerCPU: peerCPU}
	}
	got := map[string]rig.Verdict{}
	for _, f := range Goals([]rig.Line{
		line(MdctlAPI, 0.7, 14, 0.1, 0, 0),
		line(MdctlProxy, 0.3, 1.6, 1.1, 0, 0),
		line(Chain, 0.1, 30, 0.1, 6*time.Millisecond, 61<<20),
		line(ChainPG, 0.1, 0.7, 1.2, 0, 200<<20),
		line(Bare, 0, 0, 0, 0, 0),
	}) {
		got[f.Name] = f.Met
	}
	want := map[string]rig.Verdict{
		"mdctl-api keepalive " + PathMetaData + ": × bare req/s":          rig.Met,
		"mdctl-api keepalive " + PathMetaData + ": × nova req/s":          rig.Missed,
		"mdctl-proxy keepalive " + PathMetaData + ": × haproxy req/s":     rig.Met,
		"mdctl-proxy keepalive " + PathMetaData + ": × haproxy CPU/req":   rig.Missed,
		"chain keepalive " + PathMetaData + ": × nova+haproxy req/s":      rig.Met,
		"chain keepalive " + PathMetaData + ": p99":                       rig.Missed,
		"serve RSS, 10000 instances, peak under load (chain)":             rig.Missed,
		"chain-pg keepalive " + PathMetaData + ": × chain (SQLite) req/s": rig.Missed,
	}
	if len(got) != len(want) {
		t.Errorf("got %d findings, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
}
