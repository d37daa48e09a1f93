package dataplane

import (
	"os"
	"strings"
)

// Host is what the plan needs to know about the machine it runs on, read
// once per plan (ReadHost) so that Plan itself does no I/O.
type Host struct {
	// IPv6 is oslo.utils' netutils.is_ipv6_enabled(): neutron's DHCP agent
	// adds fe80::a9fe:a9fe/128 to every metadata DHCP port, and binds the
	// proxy there, whenever it holds, whatever the network's subnets.
	IPv6 bool
}

// ipv6DisabledPath is the file netutils.is_ipv6_enabled reads: the value
// new interfaces (a namespace's veth among them) start with. It is
// conf/default, not conf/all; a kernel without IPv6 has no such file.
const ipv6DisabledPath = "/proc/sys/net/ipv6/conf/default/disable_ipv6"

// ReadHost reads the host's facts as neutron reads them.
func ReadHost() Host { return Host{IPv6: ipv6Enabled(ipv6DisabledPath)} }

// ipv6Enabled is netutils.is_ipv6_enabled on path: enabled when the file
// exists and says 0.
func ipv6Enabled(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == "0"
}
