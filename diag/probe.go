package diag

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/metadata"
)

// Probe is the end-to-end probe: one request sent from inside the lab
// guest's namespace, followed through the running serve by the events its
// hops publish on the admin socket. The proxy gives the request its own id
// (it replaces X-Request-ID), so the probe finds its events by a path used
// by no one else.
type Probe struct {
	// Skipped says why no probe was sent (no lab guest, no serve).
	Skipped string `json:"skipped,omitempty"`
	// Path is the probe's unique path.
	Path string `json:"path,omitempty"`
	// Status is what the guest got back; 0 when the request failed.
	Status int `json:"status,omitempty"`
	// Error says why the request or the event stream failed.
	Error string `json:"error,omitempty"`
	// RequestID is the id serve's hops gave the probe.
	RequestID string `json:"request_id,omitempty"`
	// Hops is each hop's own latency in ms (its time minus the next
	// hop's), for the hops that published an event.
	Hops map[string]float64 `json:"hops,omitempty"`
	// TotalMS is the first hop's whole time, as that hop measured it.
	TotalMS float64 `json:"total_ms,omitempty"`
	// Statuses are what each hop answered.
	Statuses map[string]int `json:"statuses,omitempty"`
	// IPv6 is the same question asked over IPv6, as cloud-init >= 23.1
	// asks first on a guest with IPv6; nil when the guest has none.
	IPv6 *GuestRequest `json:"ipv6,omitempty"`
}

// GuestRequest is one request the probe sent as a real client does.
type GuestRequest struct {
	// URL is what the client is given; Host the header it then sends.
	URL  string `json:"url"`
	Host string `json:"host"`
	// Status is what the guest got back; 0 when the request failed.
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// probeWait is how long the probe waits for events after sending: the
// admin stream flushes every admin.FlushEvery, and the hops publish in
// separate goroutines, so three flushes plus a margin.
const probeWait = 3*admin.FlushEvery + 50*time.Millisecond

// runProbe sends the end-to-end probe when there is a guest namespace and
// a serve answering on <data-dir>/admin.sock; otherwise it says why not.
// It never fails the trace: what it finds is evidence only.
func runProbe(ctx context.Context, o Options, t *target) *Probe {
	if t.guestNS == "" {
		return &Probe{Skipped: "no lab guest namespace for this port: nothing to send a guest's request from"}
	}
	sock := filepath.Join(o.DataDir, admin.SocketName)
	if _, err := os.Stat(sock); err != nil {
		return &Probe{Skipped: "no serve admin socket at " + sock + ": the request's hops cannot be followed"}
	}
	c, err := admin.NewClient(sock)
	if err != nil {
		return &Probe{Skipped: "admin socket " + sock + ": " + err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout+probeWait)
	defer cancel()
	// Subscribe first: events are not replayed.
	st, err := c.Events(ctx, events.Filter{})
	if err != nil {
		return &Probe{Skipped: "serve's admin socket does not answer: " + rootCause(err)}
	}
	defer st.Close()
	id := requestID()
	p := &Probe{Path: "/openstack/" + id}
	// Marked, its requests show as trace's in serve's events, logs and
	// metrics, not as the guest's. A serve without POST /probes (older)
	// still answers: the probe then just looks like guest traffic. The
	// token PUT's path is every guest's: its query marks it.
	_ = c.MarkProbe(ctx, p.Path, o.Timeout+probeWait)
	tokenURI := probeTokenURI(id)
	if t.cfg.TokensRequired(t.view.Instance) {
		_ = c.MarkProbe(ctx, tokenURI, o.Timeout+probeWait)
	}
	got := make(chan events.Event)
	go func() {
		for {
			e, err := st.Next()
			if err != nil {
				close(got)
				return
			}
			if e.Path == p.Path {
				select {
				case got <- e:
				case <-ctx.Done():
					close(got)
					return
				}
			}
		}
	}()
	// With tokens required the guest's requests carry one, as an IMDSv2
	// client's do: asked once over IPv4, good for both (a token names the
	// instance, not the address family).
	hdr, err := guestToken(ctx, t, tokenURI, o.Timeout)
	if err == nil {
		if t.hasIPv6() {
			p.IPv6 = guestGet6(ctx, t.guestNS, p.Path, o.Timeout, hdr)
		}
		p.Status, err = guestGet(ctx, t.guestNS, p.Path, o.Timeout, hdr)
	}
	if err != nil {
		p.Error = "the guest's request failed: " + rootCause(err)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			// It never left the guest: no hop will publish.
			return p
		}
	}
	p.collect(ctx, got)
	return p
}

// guestClient is an HTTP client whose connections to the metadata
// address are made inside ns, one per request.
func guestClient(ns string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:             nil,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dataplane.DialContext(ctx, ns, "tcp4", net.JoinHostPort(dataplane.MetadataIPv4, "80"))
		},
	}}
}

const guestBase = "http://" + dataplane.MetadataIPv4

// guestToken is the guest's request headers: a session token among them,
// asked for at tokenURI, when the instance's requests need one
// (t.withToken).
func guestToken(ctx context.Context, t *target, tokenURI string, limit time.Duration) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return t.withTokenAt(ctx, guestClient(t.guestNS), guestBase+tokenURI, map[string]string{"User-Agent": "mdctl-trace"})
}

// probeParam is the query parameter that marks the probe's token PUT: the
// path is every guest's, and the API ignores the query.
const probeParam = "mdctl-probe"

// probeTokenURI is the token path and query the probe with id PUTs.
func probeTokenURI(id string) string { return metadata.TokenPath + "?" + probeParam + "=" + id }

// guestGet sends one GET with hdr to the metadata address from inside ns,
// as the guest would.
func guestGet(ctx context.Context, ns, path string, limit time.Duration, hdr map[string]string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	a, err := fetch(ctx, guestClient(ns), guestBase+path, hdr)
	return a.status, err
}

// Zone is the NIC cloud-init scopes the link-local metadata address to.
const zone = dataplane.GuestInterface

// guestGet6 sends what cloud-init >= 23.1 sends first on a guest with
// IPv6: it is given http://[fe80::a9fe:a9fe%25eth0]/ and Debian's urllib3
// writes the zone into Host unescaped. net/http would drop the zone from
// Host, so the head is written by hand, with requests' default headers.
func guestGet6(ctx context.Context, ns, path string, limit time.Duration, hdr map[string]string) *GuestRequest {
	g := &GuestRequest{
		URL:  "http://[" + dataplane.MetadataIPv6 + "%25" + zone + "]" + path,
		Host: "[" + dataplane.MetadataIPv6 + "%" + zone + "]",
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var token string
	if tok, ok := hdr[metadata.TokenHeader]; ok {
		token = metadata.TokenHeader + ": " + tok + "\r\n"
	}
	status, err := rawGet(ctx, ns, "tcp6", net.JoinHostPort(dataplane.MetadataIPv6+"%"+zone, "80"),
		"GET "+path+" HTTP/1.1\r\nHost: "+g.Host+"\r\nUser-Agent: mdctl-trace\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\n"+token+"Connection: close\r\n\r\n")
	g.Status = status
	if err != nil {
		g.Error = rootCause(err)
	}
	return g
}

// rawGet sends head from inside ns to addr and returns the answer's status.
func rawGet(ctx context.Context, ns, network, addr, head string) (int, error) {
	c, err := dataplane.DialContext(ctx, ns, network, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, head); err != nil {
		return 0, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// judgeIPv6 fails the proxy hop when the guest's IPv6 request, the one
// cloud-init >= 23.1 sends first and whose answer it takes even when it
// is an error, got another answer than the same request over IPv4: every
// hop can pass while such a guest gets nothing. An IPv6 request that gets
// no answer at all is evidence only: cloud-init then falls back to IPv4.
func (r *Report) judgeIPv6() {
	p := r.Probe
	if p == nil || p.IPv6 == nil {
		return
	}
	v6 := p.IPv6
	for i := range r.Hops {
		h := &r.Hops[i]
		if h.Name != HopProxy {
			continue
		}
		h.Evidence = append(h.Evidence, "probe over IPv6: "+v6.line())
		if v6.Status == 0 || p.Status == 0 || v6.Status == p.Status || !h.OK {
			return
		}
		h.OK = false
		h.Detail = fmt.Sprintf("a guest asking over IPv6 as cloud-init >= 23.1 does (Host: %s) gets %d where IPv4 gets %d", v6.Host, v6.Status, p.Status)
		h.Hint = "cloud-init takes that answer and gives up: serve's log (\"request refused\", the probe's path) and the proxy's event in mdctl tui say why the proxy refused it, " +
			logHint(path.Base(p.Path)) + "; it must accept what haproxy accepts"
		return
	}
}

// line is the request's result in one line.
func (g *GuestRequest) line() string {
	s := "GET " + g.URL + " (Host: " + g.Host + ")"
	if g.Status != 0 {
		s += fmt.Sprintf(" answered %d", g.Status)
	}
	if g.Error != "" {
		s += ": " + g.Error
	}
	return s
}

// collect reads the probe's events until every hop of one request has
// published or the wait is over, and splits the latency per hop.
func (p *Probe) collect(ctx context.Context, got <-chan events.Event) {
	byID := map[string]map[string]events.Event{}
	var order []string
	timer := time.NewTimer(probeWait)
	defer timer.Stop()
wait:
	for {
		select {
		case e, ok := <-got:
			if !ok {
				break wait
			}
			if byID[e.RequestID] == nil {
				byID[e.RequestID] = map[string]events.Event{}
				order = append(order, e.RequestID)
			}
			byID[e.RequestID][e.Hop] = e
			if len(byID[e.RequestID]) == len(events.Hops) {
				break wait
			}
			if e.Hop == events.HopProxy {
				// The proxy publishes once the request is over: what
				// the hops behind it publish is in this flush or the
				// next, so the wait ends one flush later.
				if !timer.Stop() {
					break wait
				}
				timer.Reset(admin.FlushEvery + 50*time.Millisecond)
			}
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	// The request that crossed the most hops is the probe (retries of a
	// dropped connection would make more than one).
	best := ""
	for _, id := range order {
		if best == "" || len(byID[id]) > len(byID[best]) {
			best = id
		}
	}
	if best == "" {
		if p.Error == "" {
			p.Error = fmt.Sprintf("no hop published an event for %s within %v (does this serve run the proxy?)", p.Path, probeWait)
		}
		return
	}
	p.RequestID = best
	p.split(byID[best])
}

// split turns each hop's whole time into its own: the proxy's time minus
// the next hop that published, and so on down to the API.
func (p *Probe) split(seen map[string]events.Event) {
	p.Hops, p.Statuses = map[string]float64{}, map[string]int{}
	hops := events.Hops[:]
	for i, name := range hops {
		e, ok := seen[name]
		if !ok {
			continue
		}
		own := e.Duration
		for _, next := range hops[i+1:] {
			if n, ok := seen[next]; ok {
				own -= n.Duration
				break
			}
		}
		if p.TotalMS == 0 {
			p.TotalMS = ms(e.Duration)
		}
		p.Hops[name] = ms(own)
		p.Statuses[name] = e.Status
	}
}

// evidence is the line the probe adds to hop's evidence, "" for none.
func (p *Probe) evidence(hop string) string {
	if p == nil {
		return ""
	}
	v, ok := p.Hops[hop]
	if !ok {
		return ""
	}
	return fmt.Sprintf("probe %s GET %s: this hop's own %.3fms of %.3fms end to end (answered %d)", p.RequestID, p.Path, v, p.TotalMS, p.Statuses[hop])
}

// line is the probe's one line in the text rendering.
func (p *Probe) line() string {
	if p.Skipped != "" {
		return "probe skipped: " + p.Skipped
	}
	var parts []string
	for _, h := range events.Hops {
		if v, ok := p.Hops[h]; ok {
			parts = append(parts, fmt.Sprintf("%s %.3fms", h, v))
		}
	}
	s := "probe " + p.Path
	if p.RequestID != "" {
		s = "probe " + p.RequestID
	}
	if len(parts) > 0 {
		s += fmt.Sprintf(": %s (total %.3fms, guest got %d)", strings.Join(parts, " + "), p.TotalMS, p.Status)
		var missing []string
		for _, h := range events.Hops {
			if _, ok := p.Hops[h]; !ok {
				missing = append(missing, h)
			}
		}
		if len(missing) > 0 {
			s += "; no " + strings.Join(missing, ", ") + " event on this serve's admin socket"
		}
	}
	if p.Error != "" {
		s += ": " + p.Error
	}
	if p.IPv6 != nil {
		s += "; over IPv6 " + p.IPv6.line()
	}
	return s
}

// annotate adds the probe's per-hop split to the proxy, agent and api hops.
func (r *Report) annotate() {
	hopOf := map[string]string{events.HopProxy: HopProxy, events.HopAgent: HopAgent, events.HopAPI: HopAPI}
	for i := range r.Hops {
		for eh, dh := range hopOf {
			if r.Hops[i].Name == dh {
				if ev := r.Probe.evidence(eh); ev != "" {
					r.Hops[i].Evidence = append(r.Hops[i].Evidence, ev)
				}
			}
		}
	}
}
