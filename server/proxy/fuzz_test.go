package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// parseGuest parses raw as the proxy's server does; ok is false when the
// server would have answered 400 instead.
func parseGuest(raw string) (*fasthttp.Request, bool) {
	req := &fasthttp.Request{}
	br := bufio.NewReaderSize(strings.NewReader(raw), maxHeaderBytes)
	if err := req.ReadLimitBody(br, maxBodyBytes); err != nil {
		return nil, false
	}
	if req.MayContinue() { // the server sends 100 Continue, then reads the body
		if err := req.ContinueReadBody(br, maxBodyBytes, false); err != nil {
			return nil, false
		}
	}
	return req, true
}

// agentSees is the agent's parse of the request the proxy writes for req
// on the socket; rest is what followed that one request.
func agentSees(t *testing.T, req *fasthttp.Request, lid *listenerID) (out *http.Request, body []byte, rest int, ok bool) {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	if err := writeAgentRequest(bw, req, netip.MustParseAddr("10.90.1.5"), lid, "req-fixed-by-proxy"); err != nil {
		return nil, nil, 0, false // refused with 400
	}
	bw.Flush()
	br := bufio.NewReader(&buf)
	out, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("the agent cannot parse the proxy's request: %v\n%q", err, buf.String())
	}
	body, err = io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("agent reading the body: %v", err)
	}
	return out, body, br.Buffered(), true
}

// checkIdentity: the agent's headers carry no identity header but the
// three the proxy sets, each once with its value.
func checkIdentity(t *testing.T, h http.Header, lid *listenerID, peer, rid, input string) {
	t.Helper()
	want := map[string]string{"X-Forwarded-For": peer, "X-Request-Id": rid}
	want[http.CanonicalHeaderKey(lid.key)] = lid.val[0]
	for k, vs := range h {
		if !isForbidden(k) {
			continue
		}
		if w, ok := want[k]; !ok || len(vs) != 1 || vs[0] != w {
			t.Fatalf("identity header %q = %q reached the agent (input %q)", k, vs, input)
		}
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Fatalf("%s = %q, want %q (input %q)", k, got, v, input)
		}
	}
}

func fuzzListener(kind string) *listenerID {
	if kind == "network" {
		return newListenerID(Identity{NetworkID: "n-ours"})
	}
	return newListenerID(Identity{RouterID: "r-ours"})
}

// FuzzHeaders: whatever headers a guest sends, the agent's request (on
// the socket and in process) carries no identity header but the three the
// proxy sets, each once with its value.
func FuzzHeaders(f *testing.F) {
	for _, s := range forged {
		f.Add(s, "router")
	}
	f.Add("x-neutron-router-id: a\nX_NEUTRON_ROUTER_ID: b\nConnection: X-Forwarded-For", "network")
	f.Add("X-Metadata-Provider-Whatever: 1\nx-ovn-foo: 2\nx-ReQuEsT-iD: 3", "router")
	f.Add("X-Foo: a\n X-Forwarded-For: 10.9.9.9", "router")
	f.Fuzz(func(t *testing.T, lines, kind string) {
		raw := "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n" +
			strings.ReplaceAll(lines, "\n", "\r\n") + "\r\n\r\n"
		req, ok := parseGuest(raw)
		if !ok {
			return
		}
		lid := fuzzListener(kind)
		if out, _, _, ok := agentSees(t, req, lid); ok {
			checkIdentity(t, out.Header, lid, "10.90.1.5", "req-fixed-by-proxy", lines)
		}
		out, err := outRequest(context.Background(), req, netip.MustParseAddr("10.90.1.5"), lid, "req-in-process")
		if err != nil {
			return
		}
		canon := http.Header{}
		for k, vs := range out.Header {
			ck := http.CanonicalHeaderKey(k)
			canon[ck] = append(canon[ck], vs...)
		}
		checkIdentity(t, canon, lid, "10.90.1.5", "req-in-process", lines)
	})
}

// FuzzGuestRequest: whatever bytes a guest sends, what the proxy writes
// for them is one request the agent parses, with the guest's method, path
// and body, nothing after it (no request smuggled behind), and no identity
// header but the proxy's.
func FuzzGuestRequest(f *testing.F) {
	f.Add("POST /openstack/latest/password HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /evil HTTP/1.1\r\n\r\n")
	f.Add("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;ext\r\nab\r\n0\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n")
	f.Add("GET http://evil/latest/%2e%2e/x?q=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, X-Neutron-Router-ID\r\nUpgrade: h2c\r\nX-Neutron-Router-ID: e\r\n\r\n")
	f.Add("HEAD /latest HTTP/1.0\r\nTe: trailers, gzip\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n")
	f.Add("PUT /x?a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: one\r\n\ttwo\r\n\r\nhello")
	f.Fuzz(func(t *testing.T, raw string) {
		req, ok := parseGuest(raw)
		if !ok {
			return
		}
		lid := fuzzListener("router")
		out, body, rest, ok := agentSees(t, req, lid)
		if !ok {
			return
		}
		if rest != 0 {
			t.Fatalf("%d bytes follow the agent's request (input %q)", rest, raw)
		}
		if out.Method != string(req.Header.Method()) || out.RequestURI != string(agentURI(req)) || out.Host != agentHost {
			t.Fatalf("agent got %s %s host %q for %q", out.Method, out.RequestURI, out.Host, raw)
		}
		if !bytes.Equal(body, req.Body()) {
			t.Fatalf("agent got body %q, guest sent %q", body, req.Body())
		}
		checkIdentity(t, out.Header, lid, "10.90.1.5", "req-fixed-by-proxy", raw)
	})
}
