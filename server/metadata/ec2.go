package metadata

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdctl/mdctl/store"
)

// ec2Versions are nova's EC2 metadata versions, oldest first; "latest" is
// the last of them.
var ec2Versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
	"2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04",
}

// EC2Versions returns nova's EC2 versions, oldest first (without "latest").
func EC2Versions() []string { return slices.Clone(ec2Versions) }

// ec2Since reports whether version (a member of ec2Versions) is at least
// required.
func ec2Since(required, version string) bool {
	return slices.Index(ec2Versions, version) >= slices.Index(ec2Versions, required)
}

// defaultMappings is nova's block device mapping when the root device is
// unknown (nova/block_device.py _DEFAULT_MAPPINGS); mdctl has no volumes.
var defaultMappings = obj{
	{"ami", "sda1"},
	{"ephemeral0", "sda2"},
	{"root", "/dev/sda1"},
	{"swap", "sda3"},
}

// ec2MetaData builds get_ec2_metadata's 'meta-data' dict for one version,
// keys in nova's insertion order (the config drive's meta-data.json keeps
// it). withName keeps public-keys' "_name", which only the listing uses.
func ec2MetaData(v store.InstanceView, o Options, version string, withName bool) obj {
	inst := v.Instance
	host := hostname(inst, o)
	md := obj{
		{"ami-id", fmt.Sprintf("ami-%08x", inst.EC2ID)},
		{"ami-launch-index", inst.LaunchIndex},
		{"ami-manifest-path", "FIXME"},
		{"instance-id", fmt.Sprintf("i-%08x", inst.EC2ID)},
		{"hostname", host},
		{"local-ipv4", localIPv4(v, o)},
		{"reservation-id", reservationID(inst)},
		{"security-groups", securityGroups(v)},
	}
	if len(inst.Keys) > 0 {
		key := obj{}
		if withName {
			key = append(key, member{"_name", "0=" + inst.Keys[0].Name})
		}
		key = append(key, member{"openssh-key", inst.Keys[0].Data})
		md = append(md, member{"public-keys", obj{{"0", key}}})
	}
	if ec2Since("2007-01-19", version) {
		md = append(md,
			member{"local-hostname", host},
			member{"public-hostname", host},
			member{"public-ipv4", ""}) // no floating IPs in mdctl
	}
	if ec2Since("2007-08-29", version) {
		md = append(md, member{"instance-type", inst.Flavor})
	}
	if ec2Since("2007-12-15", version) {
		md = append(md, member{"block-device-mapping", defaultMappings})
	}
	if ec2Since("2008-02-01", version) {
		md = append(md, member{"placement", obj{{"availability-zone", inst.AvailabilityZone}}})
	}
	if ec2Since("2008-09-01", version) {
		md = append(md, member{"instance-action", "none"})
	}
	return md
}

// ec2Root is the tree under /<version>/: meta-data, and user-data if any.
func ec2Root(v store.InstanceView, o Options, version string) obj {
	root := obj{{"meta-data", ec2MetaData(v, o, version, true)}}
	if v.Instance.UserData != nil {
		root = append(root, member{"user-data", v.Instance.UserData})
	}
	return root
}

// hostname is nova's _get_hostname: the instance hostname with the DHCP
// domain appended when one is configured.
func hostname(inst store.Instance, o Options) string {
	if o.DHCPDomain == "" {
		return inst.Hostname
	}
	return inst.Hostname + "." + o.DHCPDomain
}

// localIPv4 is the instance's first fixed IPv4 address, else the address the
// request came from (nova: fixed_ip or self.address).
func localIPv4(v store.InstanceView, o Options) string {
	for _, p := range v.Ports {
		for _, ip := range p.Port.FixedIPs {
			if a, err := netip.ParseAddr(ip.IPAddress); err == nil && a.Is4() {
				return ip.IPAddress
			}
		}
	}
	return o.RemoteAddr
}

// securityGroups is nova's get_instance_security_groups as the EC2 tree
// uses it: for each of the instance's ports in turn, the name of each group
// bound to it, one entry per binding and never deduplicated (nova/network/
// security_group_api.py get_instances_security_groups_bindings), so a
// two-port instance in "default" lists "default" twice. nova shows them
// nowhere else: neither meta_data.json nor network_data.json has them
// (base.py reads self.security_groups only in get_ec2_metadata).
func securityGroups(v store.InstanceView) []string {
	groups := []string{}
	for _, p := range v.Ports {
		groups = append(groups, p.Port.SecurityGroups...)
	}
	return groups
}

// reservationID stands in for nova's random reservation id ("r-" and eight
// of [0-9a-z]); derived from the instance UUID so it is stable.
func reservationID(inst store.Instance) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte("reservation:" + inst.ID))
	b := []byte("r-")
	for _, c := range sum[:8] {
		b = append(b, alphabet[int(c)%len(alphabet)])
	}
	return string(b)
}
