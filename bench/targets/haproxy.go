package targets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// NeutronHAProxy is haproxy's configuration for one namespace metadata
// proxy as neutron's metadata driver writes it
// (neutron/agent/metadata/driver.py, its global + "listen listener"
// template), for the proxy hop mdctl's proxy is measured against. It
// differs from neutron's file only where a benchmark must:
//   - no daemon, user, group or pidfile: haproxy runs in the foreground
//     (-db) as whoever starts it, so the rig knows its PID;
//   - no log and log-tag lines: there is no syslog here, so no per-request
//     httplog line is produced;
//   - no nbthread: newer neutron writes nbthread 2; the rig pins servers to
//     one CPU, where haproxy's default is one thread, as in every result
//     recorded so far.
type NeutronHAProxy struct {
	Bind   string // host:port the guest-facing listener binds
	Server string // the agent's unix socket path, or host:port
	// Resource is what the proxy serves, "Router" (qrouter-…) or "Network"
	// (qdhcp-…), and ResourceID its id: haproxy deletes the other kind's
	// X-Neutron-*-ID header and sets its own.
	Resource, ResourceID string
}

// Config is the configuration file's text.
func (c NeutronHAProxy) Config() (string, error) {
	other := map[string]string{"Router": "Network", "Network": "Router"}[c.Resource]
	if other == "" || c.ResourceID == "" || c.Bind == "" || c.Server == "" {
		return "", fmt.Errorf("haproxy config: want Bind, Server, ResourceID and Resource Router or Network, got %+v", c)
	}
	var b strings.Builder
	b.WriteString("global\n    maxconn     1024\n\n")
	b.WriteString("defaults\n")
	for _, l := range []string{
		"mode http", "option httplog", "option dontlognull", "option http-server-close", "option forwardfor",
		"retries                 3",
		"timeout http-request    30s", "timeout connect         30s",
		"timeout client          32s", "timeout server          32s",
		"timeout http-keep-alive 30s",
	} {
		b.WriteString("    " + l + "\n")
	}
	fmt.Fprintf(&b, "\nlisten listener\n    bind %s\n    server metadata %s\n", c.Bind, c.Server)
	fmt.Fprintf(&b, "    http-request del-header X-Neutron-%s-ID\n", other)
	fmt.Fprintf(&b, "    http-request set-header X-Neutron-%s-ID %s\n", c.Resource, c.ResourceID)
	return b.String(), nil
}

// Write puts the configuration in dir/name and returns its path.
func (c NeutronHAProxy) Write(dir, name string) (string, error) {
	cfg, err := c.Config()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "", fmt.Errorf("haproxy config: %w", err)
	}
	return path, nil
}
