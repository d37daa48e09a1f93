package store

import "time"

// Device owners, as neutron names them. Router interfaces and DHCP ports are
// ports like any other, so the agent's lookup is neutron's two queries.
const (
	OwnerRouterInterface = "network:router_interface"
	OwnerDHCP            = "network:dhcp"
	OwnerCompute         = "compute:nova"
)

// Project is a tenant. ID is keystone-style: 32 lowercase hex digits.
type Project struct {
	ID   string `json:"id" yaml:"id"`
	Name string `json:"name" yaml:"name"`
}

// Network is one tenant L2 segment.
type Network struct {
	ID        string `json:"id" yaml:"id"`
	Name      string `json:"name" yaml:"name"`
	ProjectID string `json:"project_id" yaml:"project_id"`
	MTU       int    `json:"mtu" yaml:"mtu"`
	// Bridge names an existing device in the host namespace that the
	// network is attached to, as neutron's linuxbridge agent attaches a
	// provider network: with VLAN 0 it is the operator's bridge itself and
	// mdctl plugs its router and DHCP ports into it; with a VLAN it is the
	// bridge or trunk carrying the VLAN, and mdctl makes <Bridge>.<VLAN>
	// and a brq<network> bridge holding it. "" is mdctl's own segment.
	Bridge    string    `json:"bridge,omitempty" yaml:"bridge,omitempty"`
	VLAN      int       `json:"vlan,omitempty" yaml:"vlan,omitempty"` // 802.1Q id, 1-4094; 0: untagged
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	UpdatedAt time.Time `json:"updated_at" yaml:"updated_at"`
}

// HostRoute is a static route a subnet hands to its guests (DHCP option 121).
type HostRoute struct {
	Destination string `json:"destination" yaml:"destination"` // CIDR
	NextHop     string `json:"nexthop" yaml:"nexthop"`
}

// Subnet is an address range on a network.
type Subnet struct {
	ID              string      `json:"id" yaml:"id"`
	NetworkID       string      `json:"network_id" yaml:"network_id"`
	Name            string      `json:"name" yaml:"name"`
	IPVersion       int         `json:"ip_version" yaml:"ip_version"` // 4 or 6
	CIDR            string      `json:"cidr" yaml:"cidr"`
	GatewayIP       string      `json:"gateway_ip" yaml:"gateway_ip"` // "" for none
	EnableDHCP      bool        `json:"enable_dhcp" yaml:"enable_dhcp"`
	IPv6AddressMode string      `json:"ipv6_address_mode,omitempty" yaml:"ipv6_address_mode,omitempty"` // "", slaac, dhcpv6-stateful, dhcpv6-stateless
	DNSNameservers  []string    `json:"dns_nameservers" yaml:"dns_nameservers"`
	HostRoutes      []HostRoute `json:"host_routes" yaml:"host_routes"`
}

// Router connects networks; its interfaces are ports owned by
// OwnerRouterInterface whose DeviceID is the router's ID.
type Router struct {
	ID        string `json:"id" yaml:"id"`
	Name      string `json:"name" yaml:"name"`
	ProjectID string `json:"project_id" yaml:"project_id"`
	// Node pins the router to a node (`router set --node`): the scheduler
	// binds it there and never moves it. "" leaves the choice to the
	// scheduler (and failover).
	Node      string    `json:"node,omitempty" yaml:"node,omitempty"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	UpdatedAt time.Time `json:"updated_at" yaml:"updated_at"`
}

// FixedIP is one address of a port on one subnet.
type FixedIP struct {
	SubnetID  string `json:"subnet_id" yaml:"subnet_id"`
	IPAddress string `json:"ip_address" yaml:"ip_address"`
}

// Port is an attachment to a network: an instance's NIC, a router interface
// or a DHCP port, told apart by DeviceOwner.
type Port struct {
	ID          string    `json:"id" yaml:"id"`
	NetworkID   string    `json:"network_id" yaml:"network_id"`
	ProjectID   string    `json:"project_id" yaml:"project_id"`
	MACAddress  string    `json:"mac_address" yaml:"mac_address"`
	FixedIPs    []FixedIP `json:"fixed_ips" yaml:"fixed_ips"`
	DeviceID    string    `json:"device_id" yaml:"device_id"`
	DeviceOwner string    `json:"device_owner" yaml:"device_owner"`
	// SecurityGroups names the security groups bound to the port, in
	// binding order; nova's EC2 security-groups lists one line per binding
	// of each of the instance's ports. Router and DHCP ports have none.
	SecurityGroups []string `json:"security_groups" yaml:"security_groups"`
	// BindingHostID is neutron's binding:host_id: the host whose VM plays
	// this port. Set, the port belongs to a VM outside mdctl's lab, which
	// `lab up`, `lab down` and the reconciler never touch; "" lets the lab
	// play it.
	BindingHostID string    `json:"binding_host_id,omitempty" yaml:"binding_host_id,omitempty"`
	CreatedAt     time.Time `json:"created_at" yaml:"created_at"`
}

// DefaultSecurityGroup is the group neutron binds a port to when none is
// named: every project has one called "default".
const DefaultSecurityGroup = "default"

// Key is one public key of an instance (nova's key pair).
type Key struct {
	Name string `json:"name" yaml:"name"`
	Type string `json:"type" yaml:"type"` // "ssh" or "x509"
	Data string `json:"data" yaml:"data"`
}

// Instance is a guest as nova knows it.
type Instance struct {
	ID               string `json:"id" yaml:"id"` // UUID
	Name             string `json:"name" yaml:"name"`
	Hostname         string `json:"hostname" yaml:"hostname"`
	ProjectID        string `json:"project_id" yaml:"project_id"`
	AvailabilityZone string `json:"availability_zone" yaml:"availability_zone"`
	Flavor           string `json:"flavor" yaml:"flavor"`
	LaunchIndex      int    `json:"launch_index" yaml:"launch_index"`
	Meta             Meta   `json:"meta" yaml:"meta"` // in nova's row order
	Keys             []Key  `json:"keys" yaml:"keys"` // in order; Keys[0] is EC2's key_name
	UserData         []byte `json:"user_data,omitempty" yaml:"user_data,omitempty"`
	ConfigDrive      bool   `json:"config_drive" yaml:"config_drive"`
	AdminPass        string `json:"-" yaml:"-"` // goes on the config drive only
	// MetadataTokens overrides the metadata_tokens setting for this
	// instance: "optional", "required", or "" to follow the setting.
	MetadataTokens string `json:"metadata_tokens,omitempty" yaml:"metadata_tokens,omitempty"`
	// EC2ID is nova's integer instance id, shown as i-%08x and ami-%08x.
	EC2ID     int64     `json:"ec2_id" yaml:"ec2_id"`
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	UpdatedAt time.Time `json:"updated_at" yaml:"updated_at"`
}

// PortView is a port with the network and subnets it lives on.
type PortView struct {
	Port    Port     `json:"port" yaml:"port"`
	Network Network  `json:"network" yaml:"network"`
	Subnets []Subnet `json:"subnets" yaml:"subnets"` // the subnets of Port.FixedIPs, in that order
}

// InstanceView is everything the metadata builders need for one instance,
// read in one consistent snapshot.
type InstanceView struct {
	Instance Instance   `json:"instance" yaml:"instance"`
	Project  Project    `json:"project" yaml:"project"`
	Ports    []PortView `json:"ports" yaml:"ports"` // ordered by creation
}

// PortFilter selects ports; empty fields match everything. Filters combine
// with AND, lists within a field with OR (neutron's get_ports semantics).
type PortFilter struct {
	NetworkIDs   []string
	DeviceIDs    []string
	DeviceOwners []string
	IPAddresses  []string
	MACAddresses []string
}

// Components a serve runs, as a Node lists them.
const (
	ComponentAPI   = "api"
	ComponentAgent = "agent"
	ComponentProxy = "proxy" // the namespace proxies and DHCP: what hosts routers and networks
)

// Node is one running serve, as it registered itself (neutron's agents
// table): what it runs, where its admin endpoint is, and when it last
// reported.
type Node struct {
	Name        string    `json:"name" yaml:"name"`                 // serve --node, default the host name
	Components  []string  `json:"components" yaml:"components"`     // ComponentAPI, ComponentAgent, ComponentProxy as serve runs them
	AdminURL    string    `json:"admin_url" yaml:"admin_url"`       // "http://HOST:PORT" of --admin-listen; "" when none
	AdminSocket string    `json:"admin_socket" yaml:"admin_socket"` // serve's admin unix socket (reachable on its own machine)
	Version     string    `json:"version" yaml:"version"`
	StartedAt   time.Time `json:"started_at" yaml:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at" yaml:"heartbeat_at"`
}

// Alive reports whether the node's heartbeat is younger than downTime
// (neutron's agent_down_time) at now.
func (n Node) Alive(now time.Time, downTime time.Duration) bool {
	return now.Sub(n.HeartbeatAt) < downTime
}

// Runs reports whether the node runs component.
func (n Node) Runs(component string) bool {
	for _, c := range n.Components {
		if c == component {
			return true
		}
	}
	return false
}

// Binding says a node hosts a router or a DHCP network (neutron's
// routerl3agentbindings and networkdhcpagentbindings rows).
type Binding struct {
	ID   string `json:"id" yaml:"id"`     // the router's or the network's
	Node string `json:"node" yaml:"node"` // the hosting node's name
}
