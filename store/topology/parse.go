package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
	"gopkg.in/yaml.v3"

	"github.com/mdctl/mdctl/store"
)

// Parse decodes a topology file and validates it on its own (references to
// records that only the store knows are checked by Apply). filename is used
// in error messages and to resolve user_data_file paths; "-" or "" means
// stdin, whose relative paths resolve from the working directory.
func Parse(data []byte, filename string) (*Topology, error) {
	d := &decoder{e: errs{file: filename}, dir: "."}
	if filename != "" && filename != "-" {
		d.dir = filepath.Dir(filename)
	}
	t := &Topology{File: filename}
	root, err := oneDocument(data, filename)
	if err != nil {
		return nil, err
	}
	if len(root.Content) > 0 {
		d.top(root.Content[0], t)
	}
	// Every mistake in one pass: what the decoder refused and what
	// validation finds in the rest, a field said wrong once.
	verr := t.Validate()
	if len(d.e.list) == 0 {
		if verr != nil {
			return nil, verr
		}
		return t, nil
	}
	all := d.e.list
	var ves Errors
	if errors.As(verr, &ves) {
		for _, ve := range ves {
			if !slices.ContainsFunc(d.e.list, func(de *Error) bool { return de.Field == ve.Field }) {
				all = append(all, ve)
			}
		}
	}
	slices.SortStableFunc(all, func(a, b *Error) int { return a.Line - b.Line })
	return nil, all
}

// syntaxError places a YAML syntax error at file:line:col. yaml.v3 says
// only a line, and often the line where the construct began; goccy's
// parser points at the offending token, so it is asked where.
func syntaxError(filename string, data []byte, err error) *Error {
	var se *goccy.SyntaxError
	if _, gerr := goccyparser.ParseBytes(data, 0); errors.As(gerr, &se) && se.Token != nil {
		return &Error{File: filename, Line: se.Token.Position.Line, Col: se.Token.Position.Column, Msg: se.Message}
	}
	return &Error{File: filename, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
}

// oneDocument decodes the file's only YAML document. A second one is
// refused rather than ignored: a file written as several documents
// ("---" between them) would otherwise apply only its first part.
func oneDocument(data []byte, filename string) (*yaml.Node, error) {
	if len(data) > MaxBytes {
		return nil, Errors{{File: filename, Line: 1, Msg: fmt.Sprintf("the file is larger than the %d MiB a topology may be (a topology of 10,000 instances is under 1 MiB): split it and apply each part",
			MaxBytes>>20)}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, Errors{syntaxError(filename, data, err)}
	}
	if err := expansion(&root, filename); err != nil {
		return nil, err
	}
	for {
		var next yaml.Node
		switch err := dec.Decode(&next); {
		case errors.Is(err, io.EOF):
			return &root, nil
		case err != nil:
			return nil, Errors{syntaxError(filename, data, err)}
		}
		if len(next.Content) == 0 || isNull(next.Content[0]) {
			continue // a stray "---" at the end holds nothing
		}
		return nil, Errors{{File: filename, Line: next.Content[0].Line,
			Msg: "a second YAML document: a topology file holds one (merge the documents, or apply each file on its own)"}}
	}
}

// MaxBytes is the largest topology file Parse reads, and MaxNodes the most
// YAML nodes its document may hold once every alias is expanded: limits far
// above any real topology that refuse, with a clear error, a file that
// would take the memory or the time of a denial of service (a "billion
// laughs" of aliases of aliases).
const (
	MaxBytes = 16 << 20
	MaxNodes = 4_000_000
)

// expansion refuses a document whose aliases expand past MaxNodes, or that
// has an alias inside its own anchor's node (a cycle).
func expansion(root *yaml.Node, filename string) error {
	sizes := map[*yaml.Node]int{} // expanded size; -1 while being counted
	var size func(n *yaml.Node) (int, *yaml.Node)
	size = func(n *yaml.Node) (int, *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			if n.Alias == nil {
				return 1, nil
			}
			return size(n.Alias)
		}
		switch s, ok := sizes[n]; {
		case ok && s < 0:
			return 0, n
		case ok:
			return s, nil
		}
		sizes[n] = -1
		total := 1
		for _, c := range n.Content {
			s, cycle := size(c)
			if cycle != nil {
				return 0, cycle
			}
			if total += s; total > MaxNodes {
				break
			}
		}
		sizes[n] = min(total, MaxNodes+1)
		return sizes[n], nil
	}
	n, cycle := size(root)
	switch {
	case cycle != nil:
		return Errors{{File: filename, Line: cycle.Line, Msg: "an alias inside the node its anchor names: the document would be infinite"}}
	case n > MaxNodes:
		return Errors{{File: filename, Line: 1, Msg: fmt.Sprintf("the document expands to more than %d YAML nodes (aliases of aliases?): a topology is far smaller; write the repeated parts out or apply in parts", MaxNodes)}}
	}
	return nil
}

type decoder struct {
	e   errs
	dir string
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.e.list = append(d.e.list, &Error{File: d.e.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// mapping walks a mapping node's fields, refusing unknown and repeated
// keys; fn is called with each known key and its value.
func (d *decoder) mapping(n *yaml.Node, path string, known []string, fn func(key string, k, v *yaml.Node)) bool {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping")
		return false
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		fp := joinPath(path, key)
		if l, dup := seen[key]; dup {
			d.fail(k, fp, "given twice (first at line %d)", l)
			continue
		}
		seen[key] = k.Line
		if known != nil && !slices.Contains(known, key) {
			d.fail(k, fp, "unknown field; known fields: %s", strings.Join(known, ", "))
			continue
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		fn(key, k, v)
	}
	return true
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// list walks a sequence node; an empty value counts as an empty list.
func (d *decoder) list(n *yaml.Node, path string, fn func(i int, v *yaml.Node)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "must be a list")
		return
	}
	for i, v := range n.Content {
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		fn(i, v)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (d *decoder) str(n *yaml.Node, path string) string {
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "must be a single value")
		return ""
	}
	return n.Value
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		d.fail(n, path, "%q is not a boolean; use true or false", n.Value)
	}
	return b
}

func (d *decoder) integer(n *yaml.Node, path string) int {
	var i int
	if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil || i < 0 {
		d.fail(n, path, "%q is not a non-negative integer", n.Value)
	}
	return i
}

func (d *decoder) strings(n *yaml.Node, path string) []string {
	var out []string
	d.list(n, path, func(i int, v *yaml.Node) {
		out = append(out, d.str(v, fmt.Sprintf("%s[%d]", path, i)))
	})
	return out
}

// stringMap keeps the file's order, which matters for public keys.
func (d *decoder) stringMap(n *yaml.Node, path string) (keys, values []string) {
	if isNull(n) {
		return nil, nil
	}
	d.mapping(n, path, nil, func(key string, k, v *yaml.Node) {
		keys = append(keys, key)
		values = append(values, d.str(v, joinPath(path, key)))
	})
	return keys, values
}

func newPos(path string, n *yaml.Node) Pos {
	return Pos{Path: path, Line: n.Line, Lines: map[string]int{}}
}

func (d *decoder) top(n *yaml.Node, t *Topology) {
	if isNull(n) {
		return
	}
	d.mapping(n, "", []string{"settings", "routers", "networks", "instances"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "settings":
			d.settings(v, t)
		case "routers":
			d.list(v, key, func(i int, v *yaml.Node) { t.Routers = append(t.Routers, d.router(v, fmt.Sprintf("routers[%d]", i))) })
		case "networks":
			d.list(v, key, func(i int, v *yaml.Node) {
				t.Networks = append(t.Networks, d.network(v, fmt.Sprintf("networks[%d]", i)))
			})
		case "instances":
			d.list(v, key, func(i int, v *yaml.Node) {
				t.Instances = append(t.Instances, d.instance(v, fmt.Sprintf("instances[%d]", i)))
			})
		}
	})
}

func (d *decoder) settings(n *yaml.Node, t *Topology) {
	if isNull(n) {
		return
	}
	d.mapping(n, "settings", nil, func(key string, k, v *yaml.Node) {
		p := newPos("settings", k)
		p.Lines[key] = k.Line
		t.Settings = append(t.Settings, SettingSpec{Key: key, Value: d.str(v, "settings."+key), Pos: p})
	})
}

func (d *decoder) router(n *yaml.Node, path string) RouterSpec {
	r := RouterSpec{Pos: newPos(path, n)}
	d.mapping(n, path, []string{"name", "project", "node"}, func(key string, k, v *yaml.Node) {
		r.Lines[key] = k.Line
		switch key {
		case "name":
			r.Name = d.str(v, joinPath(path, key))
		case "project":
			r.Project = d.str(v, joinPath(path, key))
		case "node":
			node := d.str(v, joinPath(path, key))
			r.Node = &node
		}
	})
	return r
}

var subnetFields = []string{"name", "cidr", "gateway", "dhcp_ip", "dns", "host_routes", "enable_dhcp", "ipv6_address_mode"}

func (d *decoder) network(n *yaml.Node, path string) NetworkSpec {
	nw := NetworkSpec{Pos: newPos(path, n)}
	// cidr and its companions at the network level describe its first
	// subnet; ipv6_cidr adds a SLAAC subnet; subnets lists any number.
	var first SubnetSpec
	first.Pos = newPos(path, n)
	var v6 *SubnetSpec
	known := append([]string{"project", "router", "mtu", "bridge", "vlan", "dhcp", "ipv6_cidr", "subnets"}, subnetFields...)
	d.mapping(n, path, known, func(key string, k, v *yaml.Node) {
		fp := joinPath(path, key)
		nw.Lines[key] = k.Line
		switch key {
		case "name":
			nw.Name = d.str(v, fp)
		case "project":
			nw.Project = d.str(v, fp)
		case "router":
			nw.Router = d.str(v, fp)
		case "mtu":
			nw.MTU = d.integer(v, fp)
		case "bridge":
			nw.Bridge = d.str(v, fp)
		case "vlan":
			nw.VLAN = d.integer(v, fp)
		case "dhcp":
			b := d.boolean(v, fp)
			nw.DHCP = &b
		case "ipv6_cidr":
			v6 = &SubnetSpec{CIDR: d.str(v, fp), IPv6AddressMode: "slaac", Pos: newPos(path, n)}
			v6.Lines["cidr"] = k.Line
		case "subnets":
			d.list(v, fp, func(i int, v *yaml.Node) {
				nw.Subnets = append(nw.Subnets, d.subnet(v, fmt.Sprintf("%s[%d]", fp, i), nil))
			})
		default:
			d.subnetField(&first, key, k, v, fp)
		}
	})
	if first.CIDR != "" || len(first.Lines) > 0 {
		nw.Subnets = append([]SubnetSpec{first}, nw.Subnets...)
	}
	if v6 != nil {
		nw.Subnets = append(nw.Subnets, *v6)
	}
	return nw
}

func (d *decoder) subnet(n *yaml.Node, path string, _ *SubnetSpec) SubnetSpec {
	s := SubnetSpec{Pos: newPos(path, n)}
	d.mapping(n, path, subnetFields, func(key string, k, v *yaml.Node) {
		if key == "name" {
			s.Lines[key] = k.Line
			s.Name = d.str(v, joinPath(path, key))
			return
		}
		d.subnetField(&s, key, k, v, joinPath(path, key))
	})
	return s
}

func (d *decoder) subnetField(s *SubnetSpec, key string, k, v *yaml.Node, fp string) {
	s.Lines[key] = k.Line
	switch key {
	case "cidr":
		s.CIDR = d.str(v, fp)
	case "gateway":
		s.Gateway = d.str(v, fp)
	case "dhcp_ip":
		s.DHCPIP = d.str(v, fp)
	case "dns":
		s.DNS = d.strings(v, fp)
	case "host_routes":
		d.list(v, fp, func(i int, v *yaml.Node) {
			var hr HostRouteSpec
			ep := fmt.Sprintf("%s[%d]", fp, i)
			d.mapping(v, ep, []string{"destination", "nexthop"}, func(key string, k, v *yaml.Node) {
				if key == "destination" {
					hr.Destination = d.str(v, joinPath(ep, key))
				} else {
					hr.NextHop = d.str(v, joinPath(ep, key))
				}
			})
			s.HostRoutes = append(s.HostRoutes, hr)
		})
	case "enable_dhcp":
		b := d.boolean(v, fp)
		s.EnableDHCP = &b
	case "ipv6_address_mode":
		s.IPv6AddressMode = d.str(v, fp)
	}
}

func (d *decoder) instance(n *yaml.Node, path string) InstanceSpec {
	in := InstanceSpec{Pos: newPos(path, n)}
	var network, ip string
	var netLine int
	known := []string{"name", "hostname", "project", "network", "ip", "networks", "ports", "user_data", "user_data_file",
		"public_keys", "keys", "meta", "security_groups", "availability_zone", "flavor", "launch_index", "admin_pass", "config_drive", "host", "metadata_tokens"}
	d.mapping(n, path, known, func(key string, k, v *yaml.Node) {
		fp := joinPath(path, key)
		in.Lines[key] = k.Line
		switch key {
		case "name":
			in.Name = d.str(v, fp)
		case "hostname":
			in.Hostname = d.str(v, fp)
		case "project":
			in.Project = d.str(v, fp)
		case "network":
			network, netLine = d.str(v, fp), k.Line
		case "ip":
			ip = d.str(v, fp)
		case "networks":
			for i, name := range d.strings(v, fp) {
				p := newPos(fmt.Sprintf("%s[%d]", fp, i), v.Content[i])
				in.Ports = append(in.Ports, PortSpec{Network: name, Pos: p})
			}
		case "ports":
			d.list(v, fp, func(i int, v *yaml.Node) { in.Ports = append(in.Ports, d.port(v, fmt.Sprintf("%s[%d]", fp, i))) })
		case "user_data":
			in.UserData = []byte(d.str(v, fp))
		case "user_data_file":
			in.UserData = d.readFile(v, fp)
		case "public_keys":
			names, datas := d.stringMap(v, fp)
			for i := range names {
				in.Keys = append(in.Keys, KeySpec{Name: names[i], Type: "ssh", Data: datas[i]})
			}
		case "keys":
			d.list(v, fp, func(i int, v *yaml.Node) { in.Keys = append(in.Keys, d.key(v, fmt.Sprintf("%s[%d]", fp, i))) })
		case "meta":
			keys, values := d.stringMap(v, fp)
			in.Meta = store.Meta{}
			for i := range keys {
				in.Meta.Set(keys[i], values[i])
			}
		case "security_groups":
			in.SecurityGroups = d.groups(v, fp)
		case "availability_zone":
			in.AvailabilityZone = d.str(v, fp)
		case "flavor":
			in.Flavor = d.str(v, fp)
		case "launch_index":
			in.LaunchIndex = d.integer(v, fp)
		case "admin_pass":
			in.AdminPass = d.str(v, fp)
		case "config_drive":
			in.ConfigDrive = d.boolean(v, fp)
		case "host":
			in.Host = d.str(v, fp)
		case "metadata_tokens":
			in.MetadataTokens = d.str(v, fp) // checked by Validate
		}
	})
	if _, both := in.Lines["user_data_file"]; both {
		if _, ud := in.Lines["user_data"]; ud {
			d.fail(n, joinPath(path, "user_data_file"), "give user_data or user_data_file, not both")
		}
	}
	if network != "" || ip != "" {
		if len(in.Ports) > 0 {
			d.fail(n, joinPath(path, "network"), "give network (and ip), networks or ports, not several")
		}
		p := Pos{Path: path, Line: netLine, Lines: map[string]int{}}
		if l, ok := in.Lines["ip"]; ok {
			p.Lines["ip"] = l
		}
		if p.Line == 0 {
			p.Line = in.Line
		}
		p.Lines["network"] = p.Line
		in.Ports = append([]PortSpec{{Network: network, IP: ip, Pos: p}}, in.Ports...)
	}
	return in
}

func (d *decoder) port(n *yaml.Node, path string) PortSpec {
	p := PortSpec{Pos: newPos(path, n)}
	d.mapping(n, path, []string{"network", "ip", "mac", "security_groups"}, func(key string, k, v *yaml.Node) {
		p.Lines[key] = k.Line
		switch key {
		case "network":
			p.Network = d.str(v, joinPath(path, key))
		case "ip":
			p.IP = d.str(v, joinPath(path, key))
		case "mac":
			p.MAC = d.str(v, joinPath(path, key))
		case "security_groups":
			p.SecurityGroups = d.groups(v, joinPath(path, key))
		}
	})
	return p
}

// groups reads a list of security group names; an empty list is kept as
// "none", apart from an absent key, which means the default.
func (d *decoder) groups(n *yaml.Node, path string) []string {
	g := d.strings(n, path)
	if g == nil {
		g = []string{}
	}
	return g
}

func (d *decoder) key(n *yaml.Node, path string) KeySpec {
	var k KeySpec
	d.mapping(n, path, []string{"name", "type", "data"}, func(key string, _, v *yaml.Node) {
		switch key {
		case "name":
			k.Name = d.str(v, joinPath(path, key))
		case "type":
			k.Type = d.str(v, joinPath(path, key))
		case "data":
			k.Data = d.str(v, joinPath(path, key))
		}
	})
	if k.Type == "" {
		k.Type = "ssh"
	}
	if k.Type != "ssh" && k.Type != "x509" {
		d.fail(n, joinPath(path, "type"), "%q is not a key type; allowed: ssh, x509", k.Type)
	}
	return k
}

func (d *decoder) readFile(n *yaml.Node, path string) []byte {
	name := d.str(n, path)
	if name == "" {
		d.fail(n, path, "is empty; give a file name")
		return nil
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(d.dir, name)
	}
	b, err := readSmallFile(name)
	if err != nil {
		d.fail(n, path, "%v", err)
	}
	return b
}

// readSmallFile reads a regular file of at most maxUserData bytes, so a
// path like /dev/zero cannot hang or exhaust an apply.
func readSmallFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxUserData+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}
