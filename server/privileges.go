package server

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability is one Linux capability serve may need.
type Capability struct {
	Bit  int
	Name string // as capabilities(7) and systemd's unit files spell it
}

// ProxyCapabilities are what the proxy component (and the data plane it
// reconciles) needs: namespaces and setns (CAP_SYS_ADMIN), links, addresses
// and iptables (CAP_NET_ADMIN, CAP_NET_RAW), the DHCP namespace's port 80
// and dnsmasq's port 67 (CAP_NET_BIND_SERVICE). The systemd unit grants the
// same list.
var ProxyCapabilities = []Capability{
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"},
	{unix.CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"},
	{unix.CAP_NET_RAW, "CAP_NET_RAW"},
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
}

// CheckPrivileges fails, in one line that says what to do, when components
// include the proxy and this process lacks a capability it needs: serve
// should stop at once rather than log reconcile errors forever.
func CheckPrivileges(components []string) error {
	if !slices.Contains(components, ComponentProxy) {
		return nil
	}
	missing, err := missingCapabilities(ProxyCapabilities)
	if err != nil {
		return fmt.Errorf("serve: read capabilities: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("serve: the proxy component builds namespaces and iptables rules and lacks %s; run it as root (sudo mdctl serve), or without it: mdctl serve --components api,agent",
		strings.Join(missing, ", "))
}

// missingCapabilities lists the names of caps not in the effective set.
func missingCapabilities(caps []Capability) ([]string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, err
	}
	var missing []string
	for _, c := range caps {
		if data[c.Bit/32].Effective&(1<<(uint(c.Bit)%32)) == 0 {
			missing = append(missing, c.Name)
		}
	}
	return missing, nil
}
