package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/store"
)

// Topology shared by the tests: tenant A's router rA joins netA1 and netA2;
// tenant B's router rB joins netB, where B's guest reuses A's address.
const (
	projA, projB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	instA        = "11111111-1111-4111-8111-111111111111"
	instA2       = "22222222-2222-4222-8222-222222222222"
	instB        = "33333333-3333-4333-8333-333333333333"
	instDup1     = "44444444-4444-4444-8444-444444444444"
	instDup2     = "55555555-5555-4555-8555-555555555555"
	instLL       = "66666666-6666-4666-8666-666666666666"
)

func port(id, net, proj, dev, owner, mac string, ips ...string) store.Port {
	p := store.Port{ID: id, NetworkID: net, ProjectID: proj, DeviceID: dev, DeviceOwner: owner, MACAddress: mac}
	for _, ip := range ips {
		p.FixedIPs = append(p.FixedIPs, store.FixedIP{SubnetID: "sub-" + net, IPAddress: ip})
	}
	return p
}

func topology(t *testing.T) *testStore {
	return newTestStore(t,
		port("p-ra1", "netA1", projA, "rA", store.OwnerRouterInterface, "fa:16:3e:00:00:01", "10.90.1.1"),
		port("p-ra2", "netA2", projA, "rA", "network:ha_router_replicated_interface", "fa:16:3e:00:00:02", "10.90.2.1"),
		port("p-rb", "netB", projB, "rB", store.OwnerRouterInterface, "fa:16:3e:00:00:03", "10.90.1.1"),
		port("p-a", "netA1", projA, instA, store.OwnerCompute, "fa:16:3e:00:00:10", "10.90.1.5"),
		port("p-a2", "netA2", projA, instA2, store.OwnerCompute, "fa:16:3e:00:00:11", "10.90.2.7"),
		port("p-b", "netB", projB, instB, store.OwnerCompute, "fa:16:3e:00:00:20", "10.90.1.5"),
		// The same address on both of rA's networks: neutron forwards nothing.
		port("p-d1", "netA1", projA, instDup1, store.OwnerCompute, "fa:16:3e:00:00:30", "10.90.1.9"),
		port("p-d2", "netA2", projA, instDup2, store.OwnerCompute, "fa:16:3e:00:00:31", "10.90.1.9"),
		// A dual-stack guest reached by its IPv6 link-local address.
		port("p-ll", "netA1", projA, instLL, store.OwnerCompute, "fa:16:3e:12:34:56", "10.90.1.20", "fd00:90::20"),
		// A DHCP port: not a router interface, so its device id names no router.
		port("p-dhcp", "netA1", projA, "dhcp-host", store.OwnerDHCP, "fa:16:3e:00:00:40", "10.90.1.2"),
	)
}

// apiRecorder is a fake metadata API that records what reached it.
type apiRecorder struct {
	mu      sync.Mutex
	headers []http.Header
	bodies  [][]byte
	paths   []string
	methods []string
	answer  func(w http.ResponseWriter, r *http.Request)
}

func (a *apiRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.headers = append(a.headers, r.Header.Clone())
	a.bodies = append(a.bodies, b)
	a.paths = append(a.paths, r.URL.RequestURI())
	a.methods = append(a.methods, r.Method)
	answer := a.answer
	a.mu.Unlock()
	if answer != nil {
		answer(w, r)
		return
	}
	io.WriteString(w, "ok "+r.Header.Get("X-Instance-ID"))
}

func (a *apiRecorder) last(t *testing.T) (http.Header, []byte, string, string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.headers) == 0 {
		t.Fatal("no request reached the API")
	}
	n := len(a.headers) - 1
	return a.headers[n], a.bodies[n], a.paths[n], a.methods[n]
}

func (a *apiRecorder) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.headers)
}

type harness struct {
	st    *testStore
	api   *apiRecorder
	agent *Agent
	url   string // the agent, served over HTTP on loopback
}

func newHarness(t *testing.T, st *testStore) *harness {
	t.Helper()
	api := &apiRecorder{}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	return newHarnessURL(t, st, api, apiSrv.URL)
}

func newHarnessURL(t *testing.T, st *testStore, api *apiRecorder, apiURL string) *harness {
	t.Helper()
	a := New(Options{
		Store:   st,
		Live:    store.NewLive(st, nil),
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		APIURLs: func(store.Config) []string { return []string{apiURL} },
	})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &harness{st: st, api: api, agent: a, url: srv.URL}
}

type result struct {
	code   int
	body   []byte
	header http.Header
}

func (h *harness) do(t *testing.T, method, path string, hdr map[string][]string, body []byte) result {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, b, resp.Header}
}

func router(id, ip string) map[string][]string {
	return map[string][]string{"X-Neutron-Router-ID": {id}, "X-Forwarded-For": {ip}}
}

func network(id, ip string) map[string][]string {
	return map[string][]string{"X-Neutron-Network-ID": {id}, "X-Forwarded-For": {ip}}
}

func sign(secret, id string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

func TestLookup(t *testing.T) {
	h := newHarness(t, topology(t))
	tests := []struct {
		name    string
		hdr     map[string][]string
		want    string // instance the API sees; "" means 404 from the agent
		project string
		body404 string
	}{
		{"router finds its guest", router("rA", "10.90.1.5"), instA, projA, ""},
		{"router finds guest on second network (HA interface)", router("rA", "10.90.2.7"), instA2, projA, ""},
		{"other tenant same ip behind other router", router("rB", "10.90.1.5"), instB, projB, ""},
		{"network finds its guest", network("netB", "10.90.1.5"), instB, projB, ""},
		{"network scopes the address", network("netA1", "10.90.1.5"), instA, projA, ""},
		{"no port", router("rA", "10.90.1.77"), "", "", "Instance was not found on router rA."},
		{"no port on network", network("netA2", "10.90.1.5"), "", "", "Instance was not found on network netA2."},
		{"two ports hold the address", router("rA", "10.90.1.9"), "", "", "Instance was not found on router rA."},
		{"router without interfaces", router("rNone", "10.90.1.5"), "", "", "Instance was not found on router rNone."},
		{"router id is not a dhcp device", router("dhcp-host", "10.90.1.5"), "", "", "Instance was not found on router dhcp-host."},
		{"ipv4-mapped source", router("rA", "::ffff:10.90.1.5"), instA, projA, ""},
		{"ipv6 link-local matched by EUI-64 MAC", router("rA", "fe80::f816:3eff:fe12:3456"), instLL, projA, ""},
		{"ipv6 link-local with unknown MAC", router("rA", "fe80::f816:3eff:fe12:3457"), "", "", "Instance was not found on router rA."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := h.api.count()
			r := h.do(t, "GET", "/latest/meta-data/instance-id", tc.hdr, nil)
			if tc.want == "" {
				if r.code != http.StatusNotFound || strings.TrimSpace(string(r.body)) != tc.body404 {
					t.Fatalf("got %d %q, want 404 %q", r.code, r.body, tc.body404)
				}
				if h.api.count() != before {
					t.Fatal("a request without a unique port reached the API")
				}
				return
			}
			if r.code != http.StatusOK {
				t.Fatalf("got %d %q, want 200", r.code, r.body)
			}
			hdr, _, _, _ := h.api.last(t)
			if got := hdr.Get("X-Instance-ID"); got != tc.want {
				t.Errorf("X-Instance-ID = %q, want %q", got, tc.want)
			}
			if got := hdr.Get("X-Tenant-ID"); got != tc.project {
				t.Errorf("X-Tenant-ID = %q, want %q", got, tc.project)
			}
		})
	}
}

func TestBadProxyHeaders(t *testing.T) {
	h := newHarness(t, topology(t))
	tests := []struct {
		name string
		hdr  map[string][]string
		body string // exact, when set
	}{
		{"both ids", map[string][]string{"X-Neutron-Router-ID": {"rA"}, "X-Neutron-Network-ID": {"netA1"}, "X-Forwarded-For": {"10.90.1.5"}},
			"Both network netA1 and router rA defined."},
		{"neither id", map[string][]string{"X-Forwarded-For": {"10.90.1.5"}}, ""},
		{"no xff", map[string][]string{"X-Neutron-Router-ID": {"rA"}}, ""},
		{"two xff lines", map[string][]string{"X-Neutron-Router-ID": {"rA"}, "X-Forwarded-For": {"10.90.1.5", "10.90.1.5"}}, ""},
		{"joined xff", router("rA", "10.90.1.5, 10.90.1.1"), ""},
		{"not an ip", router("rA", "evil"), ""},
		{"ip with port", router("rA", "10.90.1.5:80"), ""},
		{"zoned ipv6", router("rA", "fe80::1%eth0"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do(t, "GET", "/latest/meta-data/", tc.hdr, nil)
			if r.code != http.StatusBadRequest {
				t.Fatalf("got %d %q, want 400", r.code, r.body)
			}
			if tc.body != "" && strings.TrimSpace(string(r.body)) != tc.body {
				t.Fatalf("body %q, want %q", r.body, tc.body)
			}
		})
	}
	if n := h.api.count(); n != 0 {
		t.Fatalf("%d bad requests reached the API", n)
	}
}

func TestOnlyAllowedHeadersReachAPI(t *testing.T) {
	st := topology(t)
	st.set(t, "metadata_proxy_shared_secret", "s3cr3t")
	h := newHarness(t, st)
	hdr := router("rA", "10.90.1.5")
	for k, v := range map[string]string{
		"X-Instance-ID": instB, "X-Tenant-ID": projB, "X-Instance-ID-Signature": "forged",
		"X-Metadata-Provider": "lb", "Cookie": "a=b", "Authorization": "Bearer x",
		"X-Request-ID": "req-from-proxy", "Accept-Encoding": "gzip", "X-Custom": "1",
	} {
		hdr[k] = []string{v}
	}
	body := bytes.Repeat([]byte("p"), 1020)
	r := h.do(t, "POST", "/openstack/latest/password?x=1&y=2", hdr, body)
	if r.code != http.StatusOK {
		t.Fatalf("got %d %q", r.code, r.body)
	}
	got, gotBody, path, method := h.api.last(t)
	want := http.Header{
		"X-Forwarded-For":         {"10.90.1.5"},
		"X-Instance-Id":           {instA},
		"X-Tenant-Id":             {projA},
		"X-Instance-Id-Signature": {sign("s3cr3t", instA)},
		"X-Request-Id":            {"req-from-proxy"},
		"User-Agent":              {"mdctl-agent"},
		"Content-Length":          {"1020"},
	}
	// net/http moves Content-Length out of the header map on the server side.
	got = got.Clone()
	got.Set("Content-Length", "1020")
	if !equalHeader(got, want) {
		t.Fatalf("API saw headers\n%v\nwant\n%v", got, want)
	}
	if !bytes.Equal(gotBody, body) || path != "/openstack/latest/password?x=1&y=2" || method != "POST" {
		t.Fatalf("API saw %s %s with %d bytes", method, path, len(gotBody))
	}
	if r.header.Get("X-Request-ID") != "req-from-proxy" {
		t.Errorf("answer's X-Request-ID = %q", r.header.Get("X-Request-ID"))
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestRequestIDMadeWhenMissing(t *testing.T) {
	h := newHarness(t, topology(t))
	h.do(t, "GET", "/", router("rA", "10.90.1.5"), nil)
	got, _, _, _ := h.api.last(t)
	if id := got.Get("X-Request-ID"); !strings.HasPrefix(id, "req-") || len(id) != len("req-")+36 {
		t.Fatalf("X-Request-ID = %q, want req-<uuid>", id)
	}
}

func TestSecretChangeAppliesAtOnce(t *testing.T) {
	st := topology(t)
	st.set(t, "metadata_proxy_shared_secret", "old")
	h := newHarness(t, st)
	for _, secret := range []string{"old", "new", ""} {
		st.set(t, "metadata_proxy_shared_secret", secret)
		h.do(t, "GET", "/", router("rA", "10.90.1.5"), nil)
		got, _, _, _ := h.api.last(t)
		if sig := got.Get("X-Instance-ID-Signature"); sig != sign(secret, instA) {
			t.Fatalf("secret %q: signature %s, want %s", secret, sig, sign(secret, instA))
		}
	}
}

func TestSignInstanceIDKnownAnswer(t *testing.T) {
	// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
	const want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := SignInstanceID("Jefe", "what do ya want for nothing?"); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestLookupCacheFollowsGeneration(t *testing.T) {
	st := topology(t)
	h := newHarness(t, st)
	h.do(t, "GET", "/", router("rA", "10.90.3.3"), nil)
	calls := st.listCalls.Load()
	if r := h.do(t, "GET", "/", router("rA", "10.90.3.3"), nil); r.code != http.StatusNotFound {
		t.Fatalf("got %d", r.code)
	}
	if st.listCalls.Load() != calls {
		t.Fatal("second identical lookup queried the store")
	}
	// A new guest appears: the generation moves and the 404 must not stick.
	st.addPort(t, port("p-new", "netA2", projA, instDup1, store.OwnerCompute, "fa:16:3e:00:00:50", "10.90.3.3"))
	r := h.do(t, "GET", "/", router("rA", "10.90.3.3"), nil)
	if r.code != http.StatusOK || string(r.body) != "ok "+instDup1 {
		t.Fatalf("after the store changed: %d %q", r.code, r.body)
	}
}

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		api, want int
		relayBody bool
	}{
		{200, 200, true}, {400, 400, true}, {403, 403, true}, {404, 404, true}, {409, 409, true},
		{500, 500, true}, {502, 502, true}, {503, 503, true}, {504, 504, true},
		// 401 and 405 are session tokens' answers (AWS IMDSv2, beyond
		// neutron, whose agent turns them into 500s): relayed.
		{401, 401, true}, {405, 405, true},
		{201, 500, false}, {301, 500, false}, {429, 500, false},
	}
	h := newHarness(t, topology(t))
	for _, tc := range tests {
		t.Run(http.StatusText(tc.api), func(t *testing.T) {
			h.api.mu.Lock()
			h.api.answer = func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-test")
				w.Header().Set("Location", "http://elsewhere/") // never relayed
				w.WriteHeader(tc.api)
				io.WriteString(w, "api says")
			}
			h.api.mu.Unlock()
			r := h.do(t, "GET", "/latest/meta-data/", router("rA", "10.90.1.5"), nil)
			if r.code != tc.want {
				t.Fatalf("API %d: agent %d, want %d", tc.api, r.code, tc.want)
			}
			if r.header.Get("Location") != "" {
				t.Error("relayed a header other than Content-Type")
			}
			if tc.relayBody {
				if string(r.body) != "api says" || r.header.Get("Content-Type") != "application/x-test" {
					t.Fatalf("relayed %q (%s)", r.body, r.header.Get("Content-Type"))
				}
			} else if !strings.HasPrefix(string(r.body), msgUnexpected) {
				t.Fatalf("body %q", r.body)
			}
		})
	}
}

func TestAPIDownIs503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connect is refused
	h := newHarnessURL(t, topology(t), &apiRecorder{}, "http://"+addr)
	r := h.do(t, "GET", "/latest/meta-data/", router("rA", "10.90.1.5"), nil)
	if r.code != http.StatusServiceUnavailable || strings.TrimSpace(string(r.body)) != msgUnavailable {
		t.Fatalf("got %d %q", r.code, r.body)
	}
}

func TestDefaultAPIURLsFromSettings(t *testing.T) {
	st := topology(t)
	api := &apiRecorder{}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	host, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	st.set(t, "nova_metadata_host", host)
	st.set(t, "nova_metadata_port", portStr)
	a := New(Options{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	agentSrv := httptest.NewServer(a.Handler())
	t.Cleanup(agentSrv.Close)
	h := &harness{st: st, api: api, agent: a, url: agentSrv.URL}
	if r := h.do(t, "GET", "/latest", router("rA", "10.90.1.5"), nil); r.code != 200 {
		t.Fatalf("got %d %q", r.code, r.body)
	}
	if _, _, path, _ := api.last(t); path != "/latest" {
		t.Fatalf("path %q", path)
	}
	c := store.Config{NovaMetadataProtocol: "https", NovaMetadataHosts: []string{"fd00::1", "api-2.example.org"}, NovaMetadataPort: 8775}
	if got := strings.Join(DefaultAPIURLs(c), " "); got != "https://[fd00::1]:8775 https://api-2.example.org:8775" {
		t.Fatalf("DefaultAPIURLs = %q", got)
	}
}

func TestGzipRelayedUnchanged(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte("#cloud-config\npackages: [nginx]\n"), 200))
	zw.Close()
	gz := buf.Bytes()
	h := newHarness(t, topology(t))
	h.api.answer = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "gzip") // must not tempt anyone to decode
		w.Write(gz)
	}
	r := h.do(t, "GET", "/openstack/latest/user_data", router("rA", "10.90.1.5"), nil)
	if r.code != 200 || !bytes.Equal(r.body, gz) {
		t.Fatalf("got %d, %d bytes; want the %d gzip bytes unchanged", r.code, len(r.body), len(gz))
	}
	if got, _, _, _ := h.api.last(t); got.Get("Accept-Encoding") != "" {
		t.Fatalf("agent asked the API for %q", got.Get("Accept-Encoding"))
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, topology(t))
	if r := h.do(t, "POST", "/openstack/latest/password", router("rA", "10.90.1.5"), bytes.Repeat([]byte("x"), MaxBodyBytes)); r.code != 200 {
		t.Fatalf("body at the limit: %d", r.code)
	}
	before := h.api.count()
	if r := h.do(t, "POST", "/openstack/latest/password", router("rA", "10.90.1.5"), bytes.Repeat([]byte("x"), MaxBodyBytes+1)); r.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body over the limit: %d", r.code)
	}
	if h.api.count() != before {
		t.Fatal("an oversized body reached the API")
	}
}

func TestRunOnUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "metadata_proxy")
	// A stale socket file, as a crashed agent leaves it.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	api := &apiRecorder{}
	apiSrv := httptest.NewServer(api)
	t.Cleanup(apiSrv.Close)
	st := topology(t)
	a := New(Options{
		Store: st, SocketPath: sock, SocketOwner: -1, SocketGroup: -1,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		APIURLs: func(store.Config) []string { return []string{apiSrv.URL} },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	var resp *http.Response
	for i := 0; i < 200; i++ { // wait for Run to replace the stale socket
		req, _ := http.NewRequest("GET", "http://agent/latest/meta-data/", nil)
		req.Header.Set("X-Neutron-Router-ID", "rA")
		req.Header.Set("X-Forwarded-For", "10.90.1.5")
		if resp, err = c.Do(req); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("agent never answered on %s: %v", sock, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok "+instA {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want socket 0660", fi.Mode())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil // for the cleanup
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestRunRefusesNonSocket(t *testing.T) {
	p := filepath.Join(t.TempDir(), "metadata_proxy")
	if err := os.WriteFile(p, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := New(Options{Store: topology(t), SocketPath: p, SocketOwner: -1, SocketGroup: -1})
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "precious" {
		t.Fatal("Run destroyed a regular file")
	}
}
