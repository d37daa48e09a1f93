package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// captureRT records the request the proxy would send to the agent.
type captureRT struct{ out *http.Request }

func (c *captureRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.out = r
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

// FuzzHeaders: whatever headers a guest sends, the agent's request carries
// no identity header but the three the proxy sets, each once with its value.
func FuzzHeaders(f *testing.F) {
	for _, s := range forged {
		f.Add(s, "router")
	}
	f.Add("x-neutron-router-id: a\nX_NEUTRON_ROUTER_ID: b\nConnection: X-Forwarded-For", "network")
	f.Add("X-Metadata-Provider-Whatever: 1\nx-ovn-foo: 2\nx-ReQuEsT-iD: 3", "router")
	f.Fuzz(func(t *testing.T, lines, kind string) {
		id := Identity{RouterID: "r-ours"}
		if kind == "network" {
			id = Identity{NetworkID: "n-ours"}
		}
		req := httptest.NewRequest("GET", "/latest/meta-data/", nil)
		req.RemoteAddr = "10.90.1.5:40000"
		for _, line := range strings.Split(lines, "\n") {
			k, v, _ := strings.Cut(line, ":")
			req.Header.Add(k, strings.TrimSpace(v))
		}
		rt := &captureRT{}
		p := New(Options{AgentSocket: "/nonexistent", Logger: quiet()})
		p.rt = rt
		p.Handler(id).ServeHTTP(httptest.NewRecorder(), req)
		if rt.out == nil {
			t.Fatal("nothing forwarded")
		}
		want := map[string]string{"X-Forwarded-For": "10.90.1.5"}
		if id.RouterID != "" {
			want["X-Neutron-Router-Id"] = id.RouterID
		} else {
			want["X-Neutron-Network-Id"] = id.NetworkID
		}
		for k, vs := range rt.out.Header {
			if !isForbidden(k) {
				continue
			}
			ck := http.CanonicalHeaderKey(k)
			if ck == "X-Request-Id" && k == ck && len(vs) == 1 && strings.HasPrefix(vs[0], "req-") && !strings.Contains(lines, vs[0]) {
				continue
			}
			if w, ok := want[k]; !ok || len(vs) != 1 || vs[0] != w {
				t.Fatalf("identity header %q = %q reached the agent (input %q)", k, vs, lines)
			}
		}
		for k, v := range want {
			if got := rt.out.Header.Values(k); len(got) != 1 || got[0] != v {
				t.Fatalf("%s = %q, want %q", k, got, v)
			}
		}
	})
}
