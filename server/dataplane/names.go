package dataplane

import (
	"strconv"
	"strings"

	"github.com/mdctl/mdctl/store"
)

// Neutron's names, so that the tracer reads a real OpenStack node as well.
const (
	RouterNSPrefix = "qrouter-"
	DHCPNSPrefix   = "qdhcp-"

	// DefaultSegmentNamespace holds the tenant bridges, away from the host.
	DefaultSegmentNamespace = "mdctl-seg"
	// DefaultGuestPrefix starts the namespace name of every lab guest.
	DefaultGuestPrefix = "mdctl-vm-"

	// MetadataIPv4 and MetadataIPv6 are the addresses guests ask.
	MetadataIPv4 = "169.254.169.254"
	MetadataIPv6 = "fe80::a9fe:a9fe"
	// RouterProxyPort is where the nat REDIRECT sends guests in a router
	// namespace (neutron's metadata_port).
	RouterProxyPort = 9697
	// DHCPProxyPort is where the proxy listens in a DHCP namespace.
	DHCPProxyPort = 80

	// GuestInterface is the name of a lab guest's NIC, as a VM would see it.
	GuestInterface = "eth0"
)

// idPrefix is how much of a port or network id fits in a 15-byte
// interface name after a 3- or 4-byte prefix (neutron uses 11).
const idPrefix = 11

func short(id string, n int) string {
	if len(id) > n {
		return id[:n]
	}
	return id
}

// RouterNamespace is "qrouter-<router id>".
func RouterNamespace(routerID string) string { return RouterNSPrefix + routerID }

// DHCPNamespace is "qdhcp-<network id>".
func DHCPNamespace(networkID string) string { return DHCPNSPrefix + networkID }

// RouterInterfaceName is "qr-<port id[:11]>", the router's end of a veth.
func RouterInterfaceName(portID string) string { return "qr-" + short(portID, idPrefix) }

// DHCPInterfaceName is "ns-<port id[:11]>", the DHCP namespace's end.
func DHCPInterfaceName(portID string) string { return "ns-" + short(portID, idPrefix) }

// TapName is "tap<port id[:11]>", the bridge side of any port's veth (router,
// DHCP or guest), as neutron's linuxbridge agent names it.
func TapName(portID string) string { return "tap" + short(portID, idPrefix) }

// BridgeName is "brq<network id[:11]>", a network's bridge in the segment
// namespace (linuxbridge's name for it).
func BridgeName(networkID string) string { return "brq" + short(networkID, idPrefix) }

// NetworkBridge is the bridge a network's ports plug into, and whether it
// is in the host namespace: brq<network> in the segment namespace for
// mdctl's own networks; the operator's bridge itself for a network attached
// to one; brq<network> in the host namespace, holding the VLAN link, for a
// network on a VLAN of the operator's bridge or trunk (linuxbridge's
// ensure_vlan_bridge).
func NetworkBridge(n store.Network) (bridge string, onHost bool) {
	switch {
	case n.Bridge == "":
		return BridgeName(n.ID), false
	case n.VLAN == 0:
		return n.Bridge, true
	}
	return BridgeName(n.ID), true
}

// VLANLinkName is "<device>.<vlan>", the 802.1Q sub-interface linuxbridge
// makes on a physical interface (store.CheckVLAN keeps it within 15 bytes).
func VLANLinkName(device string, vlan int) string { return device + "." + strconv.Itoa(vlan) }

// GuestNamespace names a lab guest's namespace: prefix + the instance name
// (or id[:8] when it has none), cleaned to [a-z0-9-] and kept short; a second
// or later NIC of the instance adds "-<port id[:8]>".
func GuestNamespace(prefix string, g Guest) string {
	base := cleanName(g.InstanceName)
	if base == "" {
		base = cleanName(short(g.InstanceID, 8))
	}
	if len(base) > 32 {
		base = base[:32]
	}
	name := prefix + base
	if g.PortIndex > 0 {
		name += "-" + short(g.PortID, 8)
	}
	return name
}

func cleanName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == '_' || r == '.' || r == ' ':
			b.WriteRune('-')
		}
	}
	return strings.Trim(b.String(), "-")
}
