package diag

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fixedReport is a broken router-mode trace with every kind of hop line.
func fixedReport() Report {
	r := Report{
		Instance: "vm1", InstanceID: "6f1c2b1e-7a55-4d38-9a52-3c0d2e8f7a11", Mode: ModeRouter,
		ModeReason: "subnet 1b2c is routed: a router interface owns gateway 10.90.1.1 (force_metadata and enable_isolated_metadata are both off)",
		MS:         12.3,
		Hops: []Hop{
			{Name: HopRoute, OK: true, MS: 0.4, Detail: "169.254.169.254 via 10.90.1.1 dev eth0 (the router's gateway)"},
			{Name: HopNamespace, OK: true, MS: 0.6, Detail: "qrouter-r1 holds qr-1234 10.90.1.1/24, up"},
			{Name: HopIPTables, MS: 6.2, Detail: "iptables nat PREROUTING rule 1 ACCEPTs it first: -A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j ACCEPT (ahead of mdctl's metadata rule)",
				Hint:     "mdctl trace vm1 --fix (rewrites mdctl's rules); remove any rule ahead of them; inspect: ip netns exec qrouter-r1 iptables -t nat -S",
				Evidence: []string{"iptables -t nat: -A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j ACCEPT"}},
			{Name: HopProxy, OK: true, MS: 1.1, Detail: "a proxy answers on 0.0.0.0:9697 in qrouter-r1 (HTTP 404)", RequestIDs: []string{"trace-000000000001"}},
			{Name: HopSocket, Skipped: true, MS: 0, Detail: "not checked: example of a skipped hop", Hint: "start the agent"},
			{Name: HopStore, OK: true, MS: 0.3, Detail: "the store answers, to this trace and to serve (its /healthz)"},
			{Name: HopAgent, OK: true, MS: 1.5, Detail: "10.90.1.5 on router r1 resolves to this instance"},
			{Name: HopAPI, OK: true, MS: 1.0, Detail: "the API at 127.0.0.1:8775 accepts the signed request",
				Warnings: []string{"API replica down at 10.0.0.6:8775: connection refused; the agent asks the next one listed in nova_metadata_host"}},
			{Name: HopMetadata, OK: true, MS: 2.0, Detail: "meta_data.json uuid ok, hostname vm1.novalocal; network_data.json 1 links; user_data 30 bytes"},
		},
	}
	r.Probe = &Probe{Path: "/openstack/trace-000000000009", Status: 404, RequestID: "req-0b5e4a9c-1d2f-4e6a-8b7c-9d0e1f2a3b4c",
		TotalMS: 3.5, Hops: map[string]float64{"proxy": 0.7, "agent": 1.1, "api": 1.7}, Statuses: map[string]int{"proxy": 404, "agent": 404, "api": 404}}
	r.finish()
	r.annotate()
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./diag -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenText(t *testing.T) {
	r := fixedReport()
	var plain, color bytes.Buffer
	if err := r.WriteText(&plain, false); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&color, true); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Error("plain text carries escape codes")
	}
	if !strings.Contains(color.String(), "\x1b[") {
		t.Error("coloured text has no escape codes")
	}
	golden(t, "report.txt", plain.Bytes())
	golden(t, "report-color.txt", color.Bytes())
}

func TestGoldenJSON(t *testing.T) {
	var b bytes.Buffer
	if err := fixedReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", b.Bytes())
	// The CLI.md contract: these keys, failed_hop the first failure, hops in order.
	var m struct {
		Instance   *string `json:"instance"`
		InstanceID *string `json:"instance_id"`
		Mode       *string `json:"mode"`
		OK         *bool   `json:"ok"`
		FailedHop  *string `json:"failed_hop"`
		Hops       []map[string]any
	}
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Instance == nil || m.InstanceID == nil || m.Mode == nil || m.OK == nil || m.FailedHop == nil {
		t.Fatalf("missing top-level keys: %s", b.String())
	}
	if *m.OK || *m.FailedHop != HopIPTables {
		t.Errorf("ok=%v failed_hop=%q, want false iptables", *m.OK, *m.FailedHop)
	}
	for i, h := range m.Hops {
		for _, k := range []string{"name", "ok", "ms", "detail", "hint"} {
			if _, ok := h[k]; !ok {
				t.Errorf("hop %d lacks %q", i, k)
			}
		}
		if h["name"] != HopNames[i] {
			t.Errorf("hop %d is %v, want %s", i, h["name"], HopNames[i])
		}
	}
}

func TestReportNotFoundText(t *testing.T) {
	r := Report{Instance: "ghost", Error: `instance "ghost" not found in the store: not found`, Hint: "mdctl instance list"}
	r.finish()
	var b bytes.Buffer
	r.WriteText(&b, false)
	if r.OK || !strings.Contains(b.String(), "FAIL: instance \"ghost\" not found") || !strings.Contains(b.String(), "fix: mdctl instance list") {
		t.Errorf("ok=%v text:\n%s", r.OK, b.String())
	}
}

func TestProbeSkippedWithoutServe(t *testing.T) {
	dir := t.TempDir()
	p := runProbe(t.Context(), Options{DataDir: dir, Timeout: DefaultTimeout}, &target{guestNS: "mdctl-test-no-such-ns"})
	if p.Skipped == "" || !strings.Contains(p.Skipped, filepath.Join(dir, "admin.sock")) || p.RequestID != "" {
		t.Errorf("probe with no serve: %+v", p)
	}
	if l := p.line(); !strings.HasPrefix(l, "probe skipped: no serve admin socket") {
		t.Errorf("text line %q", l)
	}
}

// unverifiedReport is a trace of a real VM: every hop trace could check
// passed, the route hop could not be checked.
func unverifiedReport() Report {
	r := fixedReport()
	r.Hops[0] = Hop{Name: HopRoute, NotChecked: true, MS: 0.8,
		Detail:   "a real VM's route table cannot be read from here; standing in: tap0a1b2c3d-4e up on br0; DHCP lease 10.90.1.5; serve answered 4 requests from it, the last 2s ago (200)",
		Hint:     "inside the VM, ip route get 169.254.169.254 should say via 10.90.1.1",
		Evidence: []string{"want 169.254.169.254 via 10.90.1.1 (the router's gateway, DHCP option 121)", "mdctl's dnsmasq leased 10.90.1.5 to fa:16:3e:00:00:05 (no expiry)"}}
	r.Hops[2] = Hop{Name: HopIPTables, OK: true, MS: 6.2, Detail: "metadata rules present"}
	r.Hops[4] = Hop{Name: HopSocket, OK: true, MS: 0.1, Detail: "accepts (mode 0660)"}
	r.finish()
	return r
}

// TestGoldenNotChecked: a hop that cannot be checked is shown as NOT
// CHECKED with its evidence, never ✓, and the verdict is not OK.
func TestGoldenNotChecked(t *testing.T) {
	r := unverifiedReport()
	if r.OK || r.FailedHop != "" || len(r.NotChecked) != 1 || r.NotChecked[0] != HopRoute {
		t.Fatalf("ok=%v failed=%q not_checked=%v", r.OK, r.FailedHop, r.NotChecked)
	}
	var text, js bytes.Buffer
	if err := r.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "✓ route") || strings.Contains(text.String(), "every hop passed") {
		t.Errorf("an unchecked hop reads as passed:\n%s", text.String())
	}
	golden(t, "report-notchecked.txt", text.Bytes())
	golden(t, "report-notchecked.json", js.Bytes())
}

// TestGoldenTextNoServe: with no serve on the data dir the first line
// says so, the mode is said in words, and a skipped hop is NOT CHECKED
// even when its OK is set, never ✓.
func TestGoldenTextNoServe(t *testing.T) {
	r := Report{
		Instance: "vm2", InstanceID: "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a", Mode: ModeNone,
		ModeReason:     "the port has no IPv4 address on a known subnet (DHCPv6 has no metadata route)",
		NoServe:        "no mdctl serve runs on /var/lib/mdctl (its admin socket does not answer): start it with mdctl serve --data-dir /var/lib/mdctl",
		MS:             3.1,
		ServeOverrides: []string{"serve runs with --set nova_metadata_port=18775, and so does this trace"},
		Hops: []Hop{
			{Name: HopRoute, MS: 0.2, Detail: "no route to 169.254.169.254", Hint: "give the port an IPv4 address on a subnet"},
			{Name: HopNamespace, OK: true, Skipped: true, Detail: "not checked: the guest has no way to metadata"},
			{Name: HopSocket, Skipped: true, Detail: "not checked: no serve", Hint: "mdctl serve"},
		},
	}
	r.finish()
	var b bytes.Buffer
	if err := r.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "✓") || strings.Contains(b.String(), "mode none") {
		t.Errorf("a skipped hop passed, or jargon:\n%s", b.String())
	}
	if !strings.HasPrefix(b.String(), "no serve: ") {
		t.Errorf("first line does not say no serve runs:\n%s", b.String())
	}
	golden(t, "report-noserve.txt", b.Bytes())
}

// remoteReport is fixedReport traced on node net-1 for a router hosted by
// net-2, whose admin endpoint did not answer.
func remoteReport() Report {
	r := fixedReport()
	r.Node, r.Host = "net-1", "net-2"
	why := "not checked: node net-2 hosts router r1 (last heartbeat 2s ago), and its admin endpoint does not answer: http://net-2:9100: no mdctl serve is answering"
	for i := range r.Hops {
		r.Hops[i].Node = r.Node
		for _, k := range KernelHops {
			if r.Hops[i].Name == k {
				r.Hops[i] = Hop{Name: k, Node: r.Host, Skipped: true, Detail: why, Hint: "mdctl serve on node net-2 is not answering: start it (systemctl start mdctl there), or mdctl node show net-2"}
			}
		}
	}
	r.finish()
	return r
}

func TestGoldenRemoteHost(t *testing.T) {
	r := remoteReport()
	if r.OK || r.FailedHop != HopNamespace {
		t.Errorf("an unreachable host's hops must fail the trace: ok %v, failed %q", r.OK, r.FailedHop)
	}
	var text, js bytes.Buffer
	if err := r.WriteText(&text, false); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden(t, "report-remote.txt", text.Bytes())
	golden(t, "report-remote.json", js.Bytes())
}

func TestHostLine(t *testing.T) {
	for _, tc := range []struct {
		node, host, checkedOn string
		others                []string
		want                  string
	}{
		{"", "", "", nil, ""},
		{"net-1", "net-1", "net-1", nil, "the router is hosted by node net-1, this one"},
		{"net-1", "net-2", "net-2", []string{"net-3"}, "the router is hosted by node net-2 (also by net-3): namespace, iptables, proxy are checked there, through its admin endpoint"},
		{"net-1", "net-2", "net-1", nil, "the router is hosted by node net-2, on this machine: namespace, iptables, proxy are checked here"},
	} {
		r := Report{Mode: ModeRouter, Node: tc.node, Host: tc.host, OtherHosts: tc.others, Hops: []Hop{{Name: HopNamespace, Node: tc.checkedOn}}}
		if got := r.hostLine(); got != tc.want {
			t.Errorf("%+v:\n got %q\nwant %q", tc, got, tc.want)
		}
	}
}
