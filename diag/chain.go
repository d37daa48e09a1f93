package diag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/mdctl/mdctl/server/agent"
	"github.com/mdctl/mdctl/store"
)

// maxBody bounds what a probe reads of an answer.
const maxBody = 1 << 20

const metaDataPath = "/openstack/latest/meta_data.json"

func checkSocket(ctx context.Context, o Options, t *target) Hop {
	h := Hop{Evidence: []string{"socket " + t.socket}}
	restart := startHint("agent") + "; it makes " + t.socket + " on start"
	// Stat follows a link: the proxies connect through it just the same.
	fi, err := os.Stat(t.socket)
	if err != nil {
		h.Detail = "no agent socket at " + t.socket
		h.Hint = restart
		return h
	}
	mode := fi.Mode()
	h.Evidence = append(h.Evidence, fmt.Sprintf("mode %#o %s", mode.Perm(), mode.Type()))
	if mode&os.ModeSocket == 0 {
		h.Detail = t.socket + " is not a socket (" + mode.String() + ")"
		h.Hint = "move the file away, then " + restart
		return h
	}
	if mode.Perm()&0o600 != 0o600 {
		h.Detail = fmt.Sprintf("socket mode %#04o: the proxies (owner or group) cannot read and write it", mode.Perm())
		h.Hint = fmt.Sprintf("chmod 0660 %s; or %s", t.socket, t.fixHint())
		return h
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", t.socket)
	if err != nil {
		h.Detail = "the socket does not accept: " + rootCause(err) + " (a stale socket of a stopped agent?)"
		h.Hint = restart
		return h
	}
	c.Close()
	h.OK = true
	h.Detail = fmt.Sprintf("%s accepts (mode %#04o)", t.socket, mode.Perm())
	return h
}

// answer is one probe's result.
type answer struct {
	status int
	body   string
	header http.Header
}

// fetch sends one GET and reads a bounded body.
func fetch(ctx context.Context, c *http.Client, u string, hdr map[string]string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	return readAnswer(resp)
}

// readAnswer reads a bounded answer.
func readAnswer(resp *http.Response) (answer, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", err)
	}
	return answer{status: resp.StatusCode, body: string(b), header: resp.Header}, nil
}

// unixClient speaks HTTP over the agent socket, as the proxies do.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

func tcpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// scopeHeader is what the guest's proxy adds: the router id in router
// mode, the network id otherwise.
func (t *target) scopeHeader() (string, string) {
	if t.mode == ModeRouter && t.router != nil {
		return "X-Neutron-Router-ID", t.router.RouterID
	}
	return "X-Neutron-Network-ID", t.port.NetworkID
}

func checkAgent(ctx context.Context, o Options, t *target) Hop {
	rid := requestID()
	k, v := t.scopeHeader()
	h := Hop{RequestIDs: []string{rid}, Evidence: []string{fmt.Sprintf("GET %s via %s with X-Forwarded-For %s, %s %s", metaDataPath, t.socket, t.ip, k, v)}}
	owners, storeErr := portsHolding(ctx, o.Store, t)
	h.Evidence = append(h.Evidence, "store: "+describeOwners(owners, t))
	hdr, err := t.withToken(ctx, unixClient(t.socket), "http://agent", map[string]string{
		"X-Forwarded-For": t.ip, k: v, "X-Request-ID": rid,
	})
	var a answer
	if err == nil {
		a, err = fetch(ctx, unixClient(t.socket), "http://agent"+metaDataPath, hdr)
	}
	if err != nil {
		h.Detail = "cannot ask the agent: " + rootCause(err)
		h.Hint = startHint("agent")
		return h
	}
	t.agentStatus, t.agentBody, t.agentRID = a.status, firstLine(a.body), rid
	h.Evidence = append(h.Evidence, fmt.Sprintf("agent answered %d: %s", a.status, firstLine(a.body)))
	unique := storeErr == nil && len(owners) == 1 && owners[0].DeviceID == t.view.Instance.ID
	switch {
	case a.status == http.StatusOK:
		id := metaUUID(a.body)
		if id != t.view.Instance.ID {
			h.Detail = fmt.Sprintf("the agent resolved %s to instance %s, not %s", t.ip, id, t.view.Instance.ID)
			h.Hint = "overlapping addresses: " + describeOwners(owners, t) + "; give each port on the router's networks its own IP (mdctl instance show " + t.instanceName() + ")"
			return h
		}
		h.OK = true
		h.Detail = fmt.Sprintf("%s on %s %s resolves to this instance", t.ip, scopeKind(k), v)
	case a.status == http.StatusNotFound && strings.Contains(a.body, "Instance was not found"):
		h.Detail = fmt.Sprintf("the agent found no single port for %s on %s %s: %s", t.ip, scopeKind(k), v, describeOwners(owners, t))
		h.Hint = "the guest's address must be a fixed IP of exactly one port on the " + scopeKind(k) + "'s networks: mdctl instance show " + t.instanceName() + "; re-apply the topology (mdctl apply <topology.yaml>)"
	case a.status == http.StatusBadRequest:
		h.Detail = "the agent refused the proxy's headers: " + firstLine(a.body)
		h.Hint = "the proxy and agent disagree on headers; upgrade both to the same mdctl"
	case unique:
		// The agent resolved the port (the store says exactly this
		// instance holds the IP) and forwarded; the API's answer is
		// the api hop's to judge.
		h.OK = true
		h.Detail = fmt.Sprintf("%s resolves to this instance; the API's answer relayed: %d %s", t.ip, a.status, firstLine(a.body))
	default:
		h.Detail = fmt.Sprintf("agent answered %d (%s); store: %s", a.status, firstLine(a.body), describeOwners(owners, t))
		h.Hint = "the agent's log says why: " + logHint(rid)
	}
	return h
}

func scopeKind(header string) string {
	if strings.Contains(header, "Router") {
		return "router"
	}
	return "network"
}

// portsHolding runs the agent's lookup against the store: the ports on the
// router's (or the network's) networks that hold the guest's IP.
func portsHolding(ctx context.Context, st store.Reader, t *target) ([]store.Port, error) {
	nets := []string{t.port.NetworkID}
	if t.mode == ModeRouter && t.router != nil {
		ifs, err := st.ListPorts(ctx, store.PortFilter{DeviceIDs: []string{t.router.RouterID}, DeviceOwners: []string{store.OwnerRouterInterface}})
		if err != nil {
			return nil, err
		}
		nets = nets[:0]
		for _, p := range ifs {
			nets = append(nets, p.NetworkID)
		}
	}
	if len(nets) == 0 || t.ip == "" {
		return nil, nil
	}
	return st.ListPorts(ctx, store.PortFilter{NetworkIDs: nets, IPAddresses: []string{t.ip}})
}

func describeOwners(ps []store.Port, t *target) string {
	switch len(ps) {
	case 0:
		return fmt.Sprintf("0 ports hold %s", t.ip)
	case 1:
		p := ps[0]
		if p.DeviceID == t.view.Instance.ID {
			return fmt.Sprintf("1 port (%s) holds %s: this instance", p.ID, t.ip)
		}
		return fmt.Sprintf("1 port (%s) holds %s, owned by %s %s of project %s, not this instance", p.ID, t.ip, p.DeviceOwner, p.DeviceID, p.ProjectID)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.ID+" ("+p.DeviceID+", project "+p.ProjectID+")")
	}
	return fmt.Sprintf("%d ports hold %s: %s", len(ps), t.ip, strings.Join(ids, "; "))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func metaUUID(body string) string {
	var m struct {
		UUID string `json:"uuid"`
	}
	_ = json.Unmarshal([]byte(body), &m)
	return m.UUID
}

// signedHeaders are the agent's headers for this instance, signed with the
// secret in force for this trace.
func (t *target) signedHeaders(rid string) map[string]string {
	return map[string]string{
		"X-Instance-ID":           t.view.Instance.ID,
		"X-Tenant-ID":             t.view.Instance.ProjectID,
		"X-Instance-ID-Signature": agent.SignInstanceID(t.cfg.SharedSecret, t.view.Instance.ID),
		"X-Forwarded-For":         t.ip,
		"X-Request-ID":            rid,
	}
}

func checkAPI(ctx context.Context, o Options, t *target) Hop {
	h := Hop{Evidence: []string{"api " + strings.Join(o.APIURLs, ", ")}}
	base, host, down, bad := firstAPIUp(ctx, o.APIURLs)
	switch {
	case bad != "":
		h.Detail = fmt.Sprintf("bad API URL %q", bad)
		h.settingHint("mdctl config set nova_metadata_host HOST[,HOST…]; mdctl config set nova_metadata_port PORT")
		return h
	case base == "":
		h.Detail = "the API is not reachable at " + strings.Join(down, "; ")
		h.Hint = startHint("api") + "; where the agent looks: mdctl config get nova_metadata_host / nova_metadata_port"
		return h
	}
	for _, d := range down {
		h.Warnings = append(h.Warnings, "API replica down at "+d+"; the agent asks the next one listed in nova_metadata_host")
	}
	t.apiBase = base
	rid := requestID()
	h.RequestIDs = []string{rid}
	hdr, err := t.withToken(ctx, tcpClient(), base, t.signedHeaders(rid))
	var a answer
	if err == nil {
		a, err = fetch(ctx, tcpClient(), base+metaDataPath, hdr)
	}
	if err != nil {
		h.Detail = "signed request to the API failed: " + rootCause(err)
		h.Hint = "the API's log for the request: " + logHint(rid)
		return h
	}
	h.Evidence = append(h.Evidence, fmt.Sprintf("signed with the secret in force here: %d %s", a.status, firstLine(a.body)),
		fmt.Sprintf("through the agent: %d %s", t.agentStatus, t.agentBody))
	secretHint := "give the agent and the API the same metadata_proxy_shared_secret: mdctl config set metadata_proxy_shared_secret VALUE, and drop any --set metadata_proxy_shared_secret=… from one serve; then restart it"
	direct, viaAgent := a.status, t.agentStatus
	switch {
	case direct == http.StatusOK && viaAgent == http.StatusForbidden:
		h.Detail = "shared secret mismatch: the API accepts this trace's signature but refused the agent's (403): the agent signs with another metadata_proxy_shared_secret"
		h.settingHint(secretHint + "; the refusal in the agent's and the API's log: " + logHint(t.agentRID))
	case direct == http.StatusForbidden && viaAgent == http.StatusOK:
		h.OK = true
		h.Detail = "the API accepts the agent's signature (this trace's own secret differs: a serve runs with its own --set metadata_proxy_shared_secret)"
		t.viaAgent = true
	case direct == http.StatusForbidden:
		h.Detail = "shared secret mismatch: the API refused a signature made with the metadata_proxy_shared_secret in force here"
		if viaAgent == http.StatusForbidden {
			h.Detail += ", and the agent's too"
		}
		h.settingHint(secretHint + "; the refusal in the API's log: " + logHint(rid))
	case direct == http.StatusOK && (viaAgent == http.StatusServiceUnavailable || viaAgent == http.StatusBadGateway || viaAgent == http.StatusGatewayTimeout):
		h.Detail = fmt.Sprintf("the API answers here, but the agent cannot reach it (%d): the agent's nova_metadata_host/port point elsewhere", viaAgent)
		h.settingHint("mdctl config set nova_metadata_host HOST and nova_metadata_port PORT to where the API listens (" + host + ")")
	case direct == http.StatusOK:
		h.OK = true
		h.Detail = "the API at " + host + " accepts the signed request"
		if viaAgent == http.StatusOK {
			h.Detail += " (and the agent's)"
		}
	case direct == http.StatusNotFound && !t.cfg.ServiceMetadataProxy:
		h.Detail = "service_metadata_proxy is off: the API ignores the agent's signed instance id and looks up the peer address"
		h.settingHint("mdctl config set service_metadata_proxy true")
	case direct == http.StatusNotFound:
		h.Detail = "the API does not know instance " + t.view.Instance.ID + " (another store?): " + firstLine(a.body)
		h.Hint = "run the API on the same store as the agent (mdctl serve --db …)"
	default:
		h.Detail = fmt.Sprintf("the API answered %d: %s", direct, firstLine(a.body))
		h.Hint = "the API's log says why: " + logHint(rid)
	}
	return h
}

// firstAPIUp connects to each listed API at once, as the agent would, and
// returns the first in list order that accepts (its URL without a trailing
// slash and its host:port), and the ones that do not ("host:port: cause"
// each). bad is a URL that does not parse. The connects run side by side
// so that a silent replica's wait does not eat the others' time.
func firstAPIUp(ctx context.Context, urls []string) (base, host string, down []string, bad string) {
	hosts := make([]string, len(urls))
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", "", nil, raw
		}
		hosts[i] = u.Host
		if u.Port() == "" {
			port := "80"
			if u.Scheme == "https" {
				port = "443"
			}
			hosts[i] = net.JoinHostPort(u.Hostname(), port)
		}
	}
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, hp := range hosts {
		wg.Go(func() {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", hp)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case err != nil:
			down = append(down, hosts[i]+": "+rootCause(err))
		case base == "":
			base, host = strings.TrimRight(urls[i], "/"), hosts[i]
		}
	}
	return base, host, down, ""
}

func checkMetadata(ctx context.Context, o Options, t *target) Hop {
	h := Hop{}
	get := func(path string) (answer, error) {
		rid := requestID()
		h.RequestIDs = append(h.RequestIDs, rid)
		c, base, hdr := tcpClient(), t.apiBase, t.signedHeaders(rid)
		if base == "" && len(o.APIURLs) > 0 { // no API answered the api hop
			base = strings.TrimRight(o.APIURLs[0], "/")
		}
		if t.viaAgent {
			k, v := t.scopeHeader()
			c, base, hdr = unixClient(t.socket), "http://agent", map[string]string{"X-Forwarded-For": t.ip, k: v, "X-Request-ID": rid}
		}
		hdr, err := t.withToken(ctx, c, base, hdr)
		if err != nil {
			return answer{}, err
		}
		return fetch(ctx, c, base+path, hdr)
	}
	var problems, seen []string
	md, err := get(metaDataPath)
	switch {
	case err != nil:
		problems = append(problems, "meta_data.json: "+rootCause(err))
	case md.status != http.StatusOK:
		problems = append(problems, fmt.Sprintf("meta_data.json: %d %s", md.status, firstLine(md.body)))
	default:
		var m struct {
			UUID     string `json:"uuid"`
			Hostname string `json:"hostname"`
			Name     string `json:"name"`
		}
		if err := json.Unmarshal([]byte(md.body), &m); err != nil {
			problems = append(problems, "meta_data.json does not parse: "+err.Error())
			break
		}
		if m.UUID != t.view.Instance.ID {
			problems = append(problems, fmt.Sprintf("meta_data.json uuid %q, want %s", m.UUID, t.view.Instance.ID))
		}
		if m.Hostname == "" {
			problems = append(problems, "meta_data.json has no hostname")
		}
		seen = append(seen, "meta_data.json uuid ok, hostname "+m.Hostname)
	}
	nd, err := get("/openstack/latest/network_data.json")
	switch {
	case err != nil:
		problems = append(problems, "network_data.json: "+rootCause(err))
	case nd.status != http.StatusOK:
		problems = append(problems, fmt.Sprintf("network_data.json: %d %s", nd.status, firstLine(nd.body)))
	default:
		var n struct {
			Links []json.RawMessage `json:"links"`
		}
		if err := json.Unmarshal([]byte(nd.body), &n); err != nil {
			problems = append(problems, "network_data.json does not parse: "+err.Error())
			break
		}
		seen = append(seen, fmt.Sprintf("network_data.json %d links", len(n.Links)))
	}
	ud, err := get("/openstack/latest/user_data")
	want := len(t.view.Instance.UserData)
	switch {
	case err != nil:
		problems = append(problems, "user_data: "+rootCause(err))
	case ud.status == http.StatusNotFound && want == 0:
		seen = append(seen, "no user_data (none set)")
	case ud.status != http.StatusOK:
		problems = append(problems, fmt.Sprintf("user_data: %d %s (the instance has %d bytes)", ud.status, firstLine(ud.body), want))
	case len(ud.body) != want:
		problems = append(problems, fmt.Sprintf("user_data: %d bytes, the store has %d", len(ud.body), want))
	default:
		seen = append(seen, fmt.Sprintf("user_data %d bytes", want))
	}
	h.Evidence = append(seen, problems...)
	if t.viaAgent {
		h.Evidence = append([]string{"read through the agent (this trace's secret differs from the API's)"}, h.Evidence...)
	}
	if len(problems) > 0 {
		h.Detail = strings.Join(problems, "; ")
		h.Hint = "see the api hop; the API's log for these requests: " + logHint(h.RequestIDs...)
		if errors.Is(err, context.DeadlineExceeded) {
			h.Hint = "the API is slow: check dynamic vendordata targets and the store"
		}
		return h
	}
	h.OK = true
	h.Detail = strings.Join(seen, "; ")
	return h
}
