package diag

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/agent"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// DefaultTimeout bounds each check, so a whole trace of eight hops stays
// well under two seconds even when every probe times out.
const DefaultTimeout = 300 * time.Millisecond

// Options say where the pieces of the chain are.
type Options struct {
	Store store.Reader
	// StoreName names the store in hints: its file, or its URL without
	// the password; default the SQLite store's path.
	StoreName string
	// DataDir holds the agent socket (server.AgentSocketName).
	DataDir string
	// Overrides are this process's --set values: the settings "in force
	// for this trace" are the stored ones overlaid with these.
	Overrides map[string]string
	// Dataplane names the namespaces (segment, lab guest prefix).
	Dataplane dataplane.Options
	// APIURLs are the metadata API replicas' base URLs, as the agent
	// tries them; default from the settings (agent.DefaultAPIURLs: one
	// nova_metadata_protocol://host:nova_metadata_port per listed host).
	APIURLs []string
	// Timeout bounds each check; default DefaultTimeout.
	Timeout time.Duration
	// Node is the node this trace runs on (the data dir's serve's), ""
	// when unknown: then the node the store records with this data dir's
	// admin socket is this one.
	Node string
	// AdminToken is the bearer token for other nodes' TCP admin
	// endpoints, "" for $MDCTL_ADMIN_TOKEN (admin.NewClientToken).
	AdminToken string
}

func (o Options) withDefaults(cfg store.Config) Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if len(o.APIURLs) == 0 {
		o.APIURLs = agent.DefaultAPIURLs(cfg)
	}
	if o.Dataplane.GuestPrefix == "" {
		o.Dataplane.GuestPrefix = dataplane.DefaultGuestPrefix
	}
	return o
}

// target is everything the hops need to know about the traced instance,
// read once from the store and planned as serve would plan it.
type target struct {
	ref     string
	cfg     store.Config
	view    store.InstanceView
	port    store.Port
	ip      string // the guest's IPv4 (or first) address
	net     dataplane.NetSegment
	subnet  dataplane.SubnetPlan
	desired dataplane.Desired

	mode, why string
	// router mode: the router's namespace and its interface on the network
	router *dataplane.RouterNS
	rif    dataplane.Interface
	// dhcp mode
	dhcp *dataplane.DHCPNS

	guest   *dataplane.Guest
	guestNS string // "" when the lab has no guest for this port

	socket string
	// filled in by the agent hop for the api hop
	agentStatus int
	agentBody   string
	agentRID    string // the agent hop's request id, which serve's log carries
	// set by the api hop: the direct signed call was refused, the
	// metadata hop then reads through the agent
	viaAgent bool
	// set by the api hop: the first listed API that answers, which the
	// metadata hop reads from
	apiBase string
}

// Trace walks instanceRef's metadata path and reports every hop. It never
// changes anything; every check is bounded by o.Timeout.
func Trace(ctx context.Context, o Options, instanceRef string) Report {
	start := time.Now()
	r := Report{Instance: instanceRef}
	t, err := resolve(ctx, o, instanceRef)
	if storeUnreadable(err) {
		return StoreUnreadable(ctx, o, instanceRef, err)
	}
	if err != nil {
		r.Error = err.Error()
		r.Hint = "mdctl instance list (is the name right?); mdctl apply <topology.yaml> to (re)create it"
		if !errors.Is(err, store.ErrNotFound) {
			r.Hint = "check the store: mdctl instance show " + instanceRef
		}
		r.MS = ms(time.Since(start))
		r.finish()
		return r
	}
	o = o.withDefaults(t.cfg)
	t.socket = filepath.Join(o.DataDir, server.AgentSocketName)
	if t.guest != nil {
		name := dataplane.GuestNamespace(o.Dataplane.GuestPrefix, *t.guest)
		if ok, _ := dataplane.NamespaceExists(name); ok {
			t.guestNS = name
		}
	}
	r.InstanceID, r.Mode, r.ModeReason = t.view.Instance.ID, t.mode, t.why
	if r.Instance == t.view.Instance.ID && t.view.Instance.Name != "" {
		r.Instance = t.view.Instance.Name
	}
	// The probe waits on serve's event stream; it runs beside the
	// checks so that wait does not add to the trace's time. It reads
	// only o, t.guestNS and the plan (hasIPv6), which the checks never
	// change.
	probed := make(chan *Probe, 1)
	go func() { probed <- runProbe(ctx, o, t) }()
	h := hostOf(ctx, o, t)
	if o.Node == "" && h.local {
		o.Node = h.name // found by this data dir's admin socket
	}
	r.Node, r.Host, r.OtherHosts = o.Node, h.name, h.others
	for _, c := range hopChecks {
		if !h.local && slices.Contains(KernelHops, c.name) {
			if c.name == KernelHops[0] {
				r.Hops = append(r.Hops, remoteHops(ctx, o, t, h)...)
			}
			continue
		}
		hop := timed(ctx, c.name, o, t, c.fn)
		hop.Node = o.Node // checked here
		r.Hops = append(r.Hops, hop)
	}
	r.Probe = <-probed
	r.annotate()
	r.judgeIPv6()
	r.MS = ms(time.Since(start))
	r.finish()
	return r
}

// hopChecks are the hops' checks in the order a request crosses them.
var hopChecks = []struct {
	name string
	fn   func(context.Context, Options, *target) Hop
}{
	{HopRoute, checkRoute},
	{HopNamespace, checkNamespace},
	{HopIPTables, checkIPTables},
	{HopProxy, checkProxy},
	{HopSocket, checkSocket},
	{HopStore, checkStore},
	{HopAgent, checkAgent},
	{HopAPI, checkAPI},
	{HopMetadata, checkMetadata},
}

// timed runs one check under its own deadline and records its duration.
func timed(ctx context.Context, name string, o Options, t *target, fn func(context.Context, Options, *target) Hop) Hop {
	limit := o.Timeout
	if name == HopIPTables {
		// Several iptables runs (each a fork and exec) per address family.
		limit *= 3
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	h := fn(ctx, o, t)
	h.Name = name
	h.MS = ms(time.Since(start))
	if h.OK {
		h.Hint = ""
	}
	return h
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// resolve reads the instance, its first port and the plan for its network.
func resolve(ctx context.Context, o Options, ref string) (*target, error) {
	if o.Store == nil {
		return nil, errors.New("no store")
	}
	stored, err := o.Store.Settings(ctx)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	cfg, err := store.ParseConfig(stored, o.Overrides)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	view, err := o.Store.InstanceView(ctx, ref)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("instance %q not found in the store: %w", ref, err)
		}
		return nil, fmt.Errorf("instance %q: %w", ref, err)
	}
	if len(view.Ports) == 0 {
		return nil, fmt.Errorf("instance %q has no port: no network path to metadata (config drive only)", ref)
	}
	d, err := server.PlanFromStore(ctx, o.Store, cfg)
	if err != nil {
		return nil, err
	}
	t := &target{ref: ref, cfg: cfg, view: view, port: view.Ports[0].Port, desired: d}
	t.ip = guestIP(view.Ports[0])
	for _, n := range d.Networks {
		if n.NetworkID == t.port.NetworkID {
			t.net = n
		}
	}
	for _, g := range dataplane.Guests(d, []store.InstanceView{view}) {
		if g.PortID == t.port.ID {
			g := g
			t.guest = &g
		}
	}
	decideMode(t)
	return t, nil
}

// guestIP is the port's first IPv4 address (DHCP option 121 and the
// metadata route are IPv4), else its first address.
func guestIP(pv store.PortView) string {
	for _, ip := range pv.Port.FixedIPs {
		if a := net.ParseIP(ip.IPAddress); a != nil && a.To4() != nil {
			return ip.IPAddress
		}
	}
	if len(pv.Port.FixedIPs) > 0 {
		return pv.Port.FixedIPs[0].IPAddress
	}
	return ""
}

// decideMode is how the guest's request leaves its network, and why: from
// the plan of the subnet of the guest's address.
func decideMode(t *target) {
	var sub *dataplane.SubnetPlan
	for _, ip := range t.port.FixedIPs {
		for i := range t.net.Subnets {
			if t.net.Subnets[i].SubnetID == ip.SubnetID && ip.IPAddress == t.ip {
				sub = &t.net.Subnets[i]
			}
		}
	}
	if sub == nil {
		t.mode, t.why = ModeNone, "the port has no IPv4 address on a known subnet (DHCPv6 has no metadata route)"
		return
	}
	t.subnet = *sub
	via := sub.MetadataVia
	if via == "" && !sub.EnableDHCP && !sub.Isolated {
		// mdctl hands out no route here (the operator's DHCP, or the
		// guest's own config, does): the default route leads to the router.
		via = "router"
	}
	switch via {
	case "router":
		t.mode = ModeRouter
		t.why = fmt.Sprintf("subnet %s is routed: a router interface owns gateway %s (%s)", sub.SubnetID, sub.GatewayIP, t.net.DHCP.Reason)
		if !sub.EnableDHCP {
			t.why = fmt.Sprintf("subnet %s has DHCP off (the operator's DHCP or the guest's own config gives its routes) and a router interface owns gateway %s: metadata goes via the default route", sub.SubnetID, sub.GatewayIP)
		}
		for i := range t.desired.Routers {
			rt := &t.desired.Routers[i]
			for _, ifc := range rt.Interfaces {
				if ifc.NetworkID == t.port.NetworkID && hasIP(ifc.Addrs, sub.GatewayIP) {
					t.router, t.rif = rt, ifc
				}
			}
		}
	case "dhcp":
		t.mode = ModeDHCP
		t.why = "the DHCP namespace serves metadata: " + t.net.DHCP.Reason
		for i := range t.desired.DHCP {
			if t.desired.DHCP[i].NetworkID == t.port.NetworkID {
				t.dhcp = &t.desired.DHCP[i]
			}
		}
	default:
		t.mode = ModeNone
		switch {
		case t.net.DHCP.Problem != "":
			t.why = t.net.DHCP.Reason + ", but " + t.net.DHCP.Problem
		case !sub.EnableDHCP:
			t.why = fmt.Sprintf("subnet %s has DHCP off: no option 121 route to metadata", sub.SubnetID)
		default:
			t.why = fmt.Sprintf("subnet %s is isolated (%s) and %s", sub.SubnetID, isolation(*sub), t.net.DHCP.Reason)
		}
	}
}

func isolation(s dataplane.SubnetPlan) string {
	if s.GatewayIP == "" {
		return "no gateway"
	}
	return "no router interface owns gateway " + s.GatewayIP
}

// hasIP reports whether addrs (CIDR notation) hold ip.
func hasIP(addrs []string, ip string) bool {
	want := net.ParseIP(ip)
	for _, a := range addrs {
		if x, _, err := net.ParseCIDR(a); err == nil && want != nil && x.Equal(want) {
			return true
		}
	}
	return false
}

// requestID is a fresh probe id, so each probe can be found in serve's logs.
func requestID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "trace-" + hex.EncodeToString(b)
}

// hasIPv6 says whether the guest can ask metadata over IPv6: its port has
// an IPv6 address, or its network's DHCP port holds fe80::a9fe:a9fe.
func (t *target) hasIPv6() bool {
	for _, ip := range t.port.FixedIPs {
		if a := net.ParseIP(ip.IPAddress); a != nil && a.To4() == nil {
			return true
		}
	}
	if t.dhcp != nil {
		for _, a := range t.dhcp.MetadataAddrs {
			if a == dataplane.MetadataIPv6+"/128" {
				return true
			}
		}
	}
	return false
}

// instanceName is how hints name the instance (`mdctl trace NAME --fix`).
func (t *target) instanceName() string {
	if t.view.Instance.Name != "" {
		return t.view.Instance.Name
	}
	return t.view.Instance.ID
}

// namespace is the metadata namespace of the mode, "" for none.
func (t *target) namespace() string {
	switch {
	case t.mode == ModeRouter && t.router != nil:
		return t.router.Namespace
	case t.mode == ModeDHCP && t.dhcp != nil:
		return t.dhcp.Namespace
	}
	return ""
}
