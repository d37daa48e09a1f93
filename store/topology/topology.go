// Package topology owns the "desired world" mdctl seeds its store with: it
// parses the YAML of `mdctl apply`, validates every field (with the file
// and line of each mistake), and writes projects, networks, subnets,
// routers, ports and instances the way neutron and nova would create them,
// in one store transaction, idempotently.
//
// It must never talk to the kernel or serve HTTP; it only reads and writes
// through store.Store.
package topology

import (
	"fmt"
	"strings"

	"github.com/mdctl/mdctl/store"
)

// Topology is a parsed topology file: everything `mdctl apply` creates or
// updates. Specs are matched to stored records by name.
type Topology struct {
	File      string // for error messages; "" when built in code
	Settings  []SettingSpec
	Routers   []RouterSpec
	Networks  []NetworkSpec
	Instances []InstanceSpec
}

// Pos says where a spec came from, so errors can name the field and line.
// Specs built in code leave it zero and errors then name the field alone.
type Pos struct {
	Path  string         // "instances[1]"; "" outside a file
	Line  int            // line of the record
	Lines map[string]int // line of each field given
}

// line returns the line of field, or of the record when field was not given.
func (p Pos) line(field string) int {
	if l, ok := p.Lines[field]; ok {
		return l
	}
	return p.Line
}

// field returns the dotted path of a field ("instances[1].ip").
func (p Pos) field(name string) string {
	switch {
	case p.Path == "":
		return name
	case name == "":
		return p.Path
	}
	return p.Path + "." + name
}

// SettingSpec sets one store setting (nova/neutron option names).
type SettingSpec struct {
	Key, Value string
	Pos
}

// RouterSpec describes a router.
type RouterSpec struct {
	Name    string
	Project string // name or ID; created when missing
	// Node pins the router to a node (store Router.Node); "" unpins, nil
	// (no node: key) leaves the pin as it is.
	Node *string
	Pos
}

// NetworkSpec describes a network with its subnets.
type NetworkSpec struct {
	Name    string
	Project string
	Router  string // router name or ID; "" for an isolated network
	MTU     int    // 0: 1500
	// Bridge attaches the network to the operator's L2: an existing host
	// bridge (or, with VLAN, the bridge or trunk carrying it). "" is
	// mdctl's own segment. See store.Network.Bridge.
	Bridge string
	VLAN   int // 802.1Q id on Bridge; 0: untagged
	// DHCP false: mdctl runs no DHCP server here (the operator's does);
	// every subnet's enable_dhcp defaults to false. nil → true.
	DHCP    *bool
	Subnets []SubnetSpec
	Pos
}

// SubnetSpec describes one subnet of a network. Subnets are matched to
// stored ones by CIDR.
type SubnetSpec struct {
	Name            string
	CIDR            string
	Gateway         string // "" → the first host address; "none" → no gateway
	DHCPIP          string // "" → the first host address that is not the gateway
	DNS             []string
	HostRoutes      []HostRouteSpec
	EnableDHCP      *bool  // nil → true
	IPv6AddressMode string // IPv6 only: slaac, dhcpv6-stateful, dhcpv6-stateless
	// noGateway remembers "none" once Validate has cleared Gateway, so
	// that a second Validate (Apply's) does not give it the first address.
	noGateway bool
	Pos
}

// HostRouteSpec is a static route handed to guests.
type HostRouteSpec struct {
	Destination, NextHop string
}

// dhcpEnabled applies neutron's default: DHCP is on unless turned off.
func (s SubnetSpec) dhcpEnabled() bool { return s.EnableDHCP == nil || *s.EnableDHCP }

// InstanceSpec describes an instance and its ports.
type InstanceSpec struct {
	Name             string
	Hostname         string // "" → Name sanitized as nova does
	Project          string
	AvailabilityZone string // "" → nova
	Flavor           string // "" → m1.small
	LaunchIndex      int
	Ports            []PortSpec // one compute port per entry, in order
	UserData         []byte
	Keys             []KeySpec  // in order; the first is EC2's key_name
	Meta             store.Meta // in the file's order, which nova keeps
	// SecurityGroups are the groups of each port that names none; nil
	// means neutron's default group, empty means none.
	SecurityGroups []string
	ConfigDrive    bool
	AdminPass      string
	// MetadataTokens overrides the metadata_tokens setting ("" follows it).
	MetadataTokens string
	// Host binds the instance's ports to a VM on that host outside mdctl's
	// lab (neutron's binding:host_id): lab and reconciler leave them alone.
	Host string
	Pos
}

// KeySpec is one public key.
type KeySpec struct {
	Name, Type, Data string // Type "" → ssh
}

// PortSpec is one NIC of an instance.
type PortSpec struct {
	Network string // name or ID
	IP      string // "" → the next free address
	MAC     string // "" → kept, or a new fa:16:3e:… one; set it to an existing VM's NIC
	// SecurityGroups bound to this port; nil means the instance's.
	SecurityGroups []string
	Pos
}

// securityGroups is what neutron binds the port to: its own groups, else
// the instance's (nova passes the server's groups to each port it
// creates), else the project's default group.
func (p PortSpec) securityGroups(in *InstanceSpec) []string {
	switch {
	case p.SecurityGroups != nil:
		return p.SecurityGroups
	case in.SecurityGroups != nil:
		return in.SecurityGroups
	}
	return []string{store.DefaultSecurityGroup}
}

// Action says what Apply did to one record.
type Action string

// The actions Apply reports.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Deleted   Action = "deleted"
)

// Change is one record Apply looked at.
type Change struct {
	Kind   string `json:"kind" yaml:"kind"` // setting, project, router, network, subnet, port, instance
	Name   string `json:"name" yaml:"name"`
	ID     string `json:"id" yaml:"id"`
	Action Action `json:"action" yaml:"action"`
	Detail string `json:"detail,omitempty" yaml:"detail,omitempty"`
}

// Result lists every record Apply created, updated, deleted or left alone,
// in the order it handled them.
type Result struct {
	Changes []Change `json:"changes" yaml:"changes"`
}

// Changed reports whether Apply wrote anything.
func (r Result) Changed() bool {
	for _, c := range r.Changes {
		if c.Action != Unchanged {
			return true
		}
	}
	return false
}

// Count returns how many changes had action a.
func (r Result) Count(a Action) int {
	n := 0
	for _, c := range r.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

func (r *Result) add(kind, name, id string, a Action, detail string) {
	r.Changes = append(r.Changes, Change{Kind: kind, Name: name, ID: id, Action: a, Detail: detail})
}

// Error is one mistake in a topology, at a field (and a line when the
// topology came from a file).
type Error struct {
	File  string
	Line  int
	Col   int // YAML syntax errors only
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		if e.Line > 0 && e.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Col)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every mistake found in a topology; a topology with any is
// refused whole.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errs collects errors against one file.
type errs struct {
	file string
	list Errors
}

func (c *errs) at(p Pos, field string, format string, args ...any) {
	c.list = append(c.list, &Error{File: c.file, Line: p.line(field), Field: p.field(field), Msg: fmt.Sprintf(format, args...)})
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	return c.list
}
