package inprocess

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestHandlerTransportMatchesTCP: what the agent gets from an in-process API
// is what it gets over a real connection: status, headers it relays, body
// bytes and length, HEAD included.
func TestHandlerTransportMatchesTCP(t *testing.T) {
	gz := []byte{0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/gzip":
			w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(gz)))
			if r.Method != http.MethodHead {
				w.Write(gz)
			}
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Seen", r.Header.Get("X-Instance-ID")+"|"+r.URL.RawQuery+"|"+string(body))
			w.WriteHeader(http.StatusConflict)
		default:
			http.NotFound(w, r)
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	type answer struct {
		status int
		ctype  string
		seen   string
		length int64
		body   []byte
	}
	do := func(rt http.RoundTripper, method, path, body string) answer {
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = http.Header{"X-Instance-ID": {"abc"}} // not canonical, as the agent writes it
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Seen"), resp.ContentLength, b}
	}
	tcp := &http.Transport{DisableCompression: true}
	defer tcp.CloseIdleConnections()
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/gzip", ""}, {"HEAD", "/gzip", ""}, {"GET", "/nope", ""},
		{"POST", "/echo?x=1", "password!"},
	} {
		want, got := do(tcp, c.method, c.path, c.body), do(Transport{h}, c.method, c.path, c.body)
		if got.status != want.status || got.ctype != want.ctype || got.seen != want.seen || !bytes.Equal(got.body, want.body) ||
			(want.length >= 0 && got.length != want.length) {
			t.Errorf("%s %s: in-process %+v, over TCP %+v", c.method, c.path, got, want)
		}
	}
}
