package agent

// Failover between the API replicas nova_metadata_host lists (an mdctl
// extension: neutron's agent takes one host). The agent sends a guest's
// request to the replica that last answered and, when it gives no answer,
// to the next one at once, for the same request.
//
// Resending is safe because no answer came back: the agent forwards GETs,
// the token PUT (which mints a token any replica accepts: they share
// metadata_token_key) and the password POST, which nova stores only once
// (a resend after the first replica stored it is answered 409, as the
// guest's own retry would be). What counts as no answer: the connection
// failed (refused, unreachable, dial timeout: nothing was sent), the API
// did not acknowledge what was sent for UserTimeout (the replica went
// silent), the connection broke before the status line (the replica
// died), or no status line came within answerWait while another replica
// could answer (the replica hangs).

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mdctl/mdctl/server/api"
	"github.com/mdctl/mdctl/store"
)

const (
	// UserTimeout is TCP_USER_TIMEOUT on the agent's connections to the
	// API: data unacknowledged this long kills the connection, so a
	// replica that went silent (powered off, cut off) is noticed in
	// seconds instead of the kernel's ~15 minutes of retransmissions, well
	// inside cloud-init's 10 s per request.
	UserTimeout = 5 * time.Second
	// FailbackAfter is how long the agent keeps to a later replica before
	// it asks an earlier one's /healthcheck again (in the background: no
	// guest waits on it). The list is an order of preference (the local
	// replica first, say), so the agent returns to it once it answers,
	// rather than keeping whichever replica happened to work.
	FailbackAfter = 30 * time.Second
	// hungAfter is how long a replica may take to start its answer, when
	// another could answer instead, before the agent asks that one: the
	// API answers from its store in milliseconds.
	hungAfter = 5 * time.Second
)

// answerWait is how long the agent waits for a replica's status line
// before it asks the next: hungAfter, plus what the API itself may wait on
// dynamic vendordata services (each, in turn, for at most its connect and
// read timeouts).
func answerWait(c store.Config) time.Duration {
	d := hungAfter
	if slices.Contains(c.VendordataProviders, "DynamicJSON") {
		each := time.Duration(c.VendordataConnectTimeout+c.VendordataReadTimeout) * time.Second
		d += each * time.Duration(len(c.VendordataDynamicTargets))
	}
	return d
}

// DefaultAPIURLs are neutron's URLs for nova, one per listed host:
// protocol://host:port, all on the one nova_metadata_port as in neutron.
func DefaultAPIURLs(c store.Config) []string {
	urls := make([]string, len(c.NovaMetadataHosts))
	for i, h := range c.NovaMetadataHosts {
		urls[i] = c.NovaMetadataProtocol + "://" + net.JoinHostPort(h, strconv.Itoa(c.NovaMetadataPort))
	}
	return urls
}

// replicas remembers which of the listed APIs answers, so that later
// requests do not pay a dead one's timeout.
type replicas struct {
	log *slog.Logger
	// healthy asks one API whether it serves (its /healthcheck).
	healthy func(ctx context.Context, base string) bool
	now     func() time.Time

	mu sync.Mutex
	// chosen is the URL requests go to first; "" or one no longer listed
	// means the list's first.
	chosen string
	// since is when chosen last changed or was last checked against the
	// earlier replicas.
	since   time.Time
	probing bool
}

// start is the index in urls that a request tries first. When that is
// not the first and FailbackAfter has passed, the earlier replicas are
// checked in the background.
func (p *replicas) start(urls []string) int {
	if len(urls) < 2 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(urls, p.chosen)
	if i <= 0 {
		return 0
	}
	if !p.probing && p.now().Sub(p.since) >= FailbackAfter {
		p.probing = true
		go p.failback(slices.Clone(urls[:i+1]))
	}
	return i
}

// answered records that base answered a request that first went to dead,
// which gave none. The first request to see this moves chosen and logs;
// others racing it only bump the metric.
func (p *replicas) answered(dead, base string) {
	p.mu.Lock()
	if p.chosen == base {
		p.mu.Unlock()
		return
	}
	p.chosen, p.since = base, p.now()
	p.mu.Unlock()
	p.log.Warn("metadata API gives no answer; the agent uses the next one listed in nova_metadata_host", "down", dead, "using", base)
}

// failback asks the replicas listed before the chosen one (the last of
// urls) whether they serve again, and prefers the first that does.
func (p *replicas) failback(urls []string) {
	current := urls[len(urls)-1]
	back := ""
	for _, u := range urls[:len(urls)-1] {
		ctx, cancel := context.WithTimeout(context.Background(), DialTimeout+hungAfter)
		ok := p.healthy(ctx, u)
		cancel()
		if ok {
			back = u
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probing, p.since = false, p.now()
	if back == "" || p.chosen != current {
		return
	}
	p.chosen = back
	p.log.Info("metadata API answers again; the agent prefers it, as listed in nova_metadata_host", "api", back, "was_using", current)
}

// healthcheck is replicas.healthy over the agent's own transport: 200 from
// the API's /healthcheck (503 while an operator drains it with its
// healthcheck_disable file).
func (a *Agent) healthcheck(ctx context.Context, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+api.HealthcheckPath, http.NoBody)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "mdctl-agent")
	resp, err := a.api.RoundTrip(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
