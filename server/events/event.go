// Package events carries what serve's hops saw, one event per request and
// hop, from the request path to whoever watches (the admin endpoint, the
// TUI), and keeps the Prometheus counters and histograms of those events.
//
// It owns the fan-out, the subscriber buffers and the metrics. It must
// never block or slow a request: Publish does a bounded amount of work
// with no locks held against consumers, and a consumer that falls behind
// loses events (counted) rather than holding anyone up. It never reaches
// back into the components that publish.
package events

import (
	"strconv"
	"strings"
	"time"
)

// The hops that publish, in the order a request crosses them.
const (
	HopProxy = "proxy"
	HopAgent = "agent"
	HopAPI   = "api"
)

// Hops lists the hops in request order.
var Hops = [...]string{HopProxy, HopAgent, HopAPI}

// The modes a guest reaches metadata through.
const (
	ModeRouter = "router"
	ModeDHCP   = "dhcp"
)

// Event is what one hop saw of one request. Events of one request share
// RequestID across hops.
type Event struct {
	Time         time.Time     `json:"time"`
	RequestID    string        `json:"request_id"`
	Hop          string        `json:"hop"`
	Namespace    string        `json:"namespace,omitempty"`
	Mode         string        `json:"mode,omitempty"`
	SourceIP     string        `json:"source_ip,omitempty"`
	InstanceID   string        `json:"instance_id,omitempty"`
	InstanceName string        `json:"instance_name,omitempty"`
	ProjectID    string        `json:"project_id,omitempty"`
	Method       string        `json:"method"`
	Path         string        `json:"path"`
	Status       int           `json:"status"`
	Bytes        int64         `json:"bytes"`
	Duration     time.Duration `json:"duration_ns"`
	Error        string        `json:"error,omitempty"`
	// Probe marks a request of trace's own probe (see Bus.MarkProbe):
	// shown as such, and counted apart from guest requests.
	Probe bool `json:"probe,omitempty"`
}

// Failed reports a server-side or gateway failure, or an error the hop
// noted: what an error rate counts.
func (e Event) Failed() bool { return e.Status >= 500 || e.Error != "" }

// PathClass buckets a request path into a few kinds, so that metrics
// labels stay bounded whatever paths guests ask for.
func PathClass(p string) string {
	switch {
	case p == "/" || p == "":
		return "root"
	case strings.Contains(p, "password"):
		return "password"
	case p == "/openstack" || strings.HasPrefix(p, "/openstack/"):
		return "openstack"
	case p == "/latest" || strings.HasPrefix(p, "/latest/") || isEC2Version(p):
		return "ec2"
	case p == "/healthz" || p == "/healthcheck":
		return "health"
	}
	return "other"
}

// isEC2Version matches "/YYYY-MM-DD" and below.
func isEC2Version(p string) bool {
	if len(p) < 11 || p[0] != '/' || p[5] != '-' || p[8] != '-' {
		return false
	}
	for _, i := range [...]int{1, 2, 3, 4, 6, 7, 9, 10} {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return len(p) == 11 || p[11] == '/'
}

// Filter selects events. Empty fields match everything.
type Filter struct {
	// Instance matches the instance id or name, exactly.
	Instance string
	// Hop is one of Hops.
	Hop string
	// Status is an exact code ("404"), a class ("5xx") or "error"
	// (Failed events).
	Status string
}

// Match reports whether e passes the filter.
func (f Filter) Match(e Event) bool {
	if f.Hop != "" && f.Hop != e.Hop {
		return false
	}
	if f.Instance != "" && f.Instance != e.InstanceID && f.Instance != e.InstanceName {
		return false
	}
	return f.Status == "" || StatusMatches(f.Status, e)
}

// StatusMatches applies a status filter ("404", "4xx", "error") to e.
func StatusMatches(want string, e Event) bool {
	switch {
	case want == "error":
		return e.Failed()
	case len(want) == 3 && strings.HasSuffix(want, "xx"):
		return want[0] >= '1' && want[0] <= '5' && e.Status/100 == int(want[0]-'0')
	}
	return want == strconv.Itoa(e.Status)
}

// ValidStatusFilter says whether s is a status filter Match understands.
func ValidStatusFilter(s string) bool {
	if s == "" || s == "error" {
		return true
	}
	if len(s) == 3 && strings.HasSuffix(s, "xx") {
		return s[0] >= '1' && s[0] <= '5'
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599
}
