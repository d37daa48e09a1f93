package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAsHAProxyAnswers pins what neutron's haproxy (2.6.12, configured as
// bench/targets.NeutronHAProxy writes neutron's template, on loopback, an
// agent on its unix socket) was seen to do with requests that are odd but not malformed:
// it forwards them, and the guest gets the agent's answer at once. mdctl
// gave OPTIONS * a 500 and made LF-only heads wait 30 s for a 408.
func TestAsHAProxyAnswers(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	sock := rawAgent(t, func(r *http.Request) string {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s body=%q", r.Method, r.RequestURI, b))
		mu.Unlock()
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	})
	addr := serve(t, New(Options{AgentSocket: sock, Logger: quiet()}), Identity{RouterID: "rA"})
	tests := []struct {
		name, raw string
		agent     []string // what reached the agent, per request
		codes     []int    // the guest's answers, in order
	}{
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{`OPTIONS * body=""`}, []int{200}},
		// haproxy forwards GET * too (nova then answers 404 for /*),
		// though fasthttp refuses it (RFC 9112 §3.2.4 allows the asterisk
		// form for OPTIONS only): the refusal hands it on.
		{"GET *", "GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			[]string{`GET * body=""`}, []int{200}},
		{"LF only", "GET /latest/ HTTP/1.1\nHost: x\nConnection: close\n\n",
			[]string{`GET /latest/ body=""`}, []int{200}},
		{"LF only HTTP/1.0", "GET /latest/ HTTP/1.0\n\n",
			[]string{`GET /latest/ body=""`}, []int{200}},
		{"CRLF and LF mixed", "GET /latest/ HTTP/1.1\r\nHost: x\nConnection: close\r\n\n",
			[]string{`GET /latest/ body=""`}, []int{200}},
		// haproxy keeps the connection: two LF-only requests on one, the
		// first with a body holding LFs that must pass as sent.
		{"LF only keep-alive with body", "POST /openstack/latest/password HTTP/1.1\nHost: x\nContent-Length: 4\n\na\nb\nGET /latest/ HTTP/1.1\nHost: x\nConnection: close\n\n",
			[]string{`POST /openstack/latest/password body="a\nb\n"`, `GET /latest/ body=""`}, []int{200, 200}},
		{"LF only chunked", "POST /openstack/latest/password HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nConnection: close\n\n3\r\nabc\r\n0\r\n\r\n",
			[]string{`POST /openstack/latest/password body="abc"`}, []int{200}},
		{"bare CR", "GET /latest/ HTTP/1.1\rHost: x\r\n\r\n", nil, []int{400}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			c := dialGuest(t, addr)
			// Far below the 30 s a hang would take, far above an answer.
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tc.raw)
			br := bufio.NewReader(c)
			var codes []int
			for range tc.codes {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("after %v: %v", codes, err)
				}
				io.Copy(io.Discard, resp.Body)
				codes = append(codes, resp.StatusCode)
			}
			if fmt.Sprint(codes) != fmt.Sprint(tc.codes) {
				t.Errorf("answers %v, want %v", codes, tc.codes)
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Join(seen, "|") != strings.Join(tc.agent, "|") {
				t.Errorf("agent saw %q, want %q", seen, tc.agent)
			}
		})
	}
}
