package diag

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
	"github.com/mdctl/mdctl/server/vmspec"
)

// checkRouteOutside is the route hop for a guest trace cannot enter: a
// real VM (or nothing at all) on the port. Its route table cannot be read
// from here, so the hop gathers what stands in for it: the port's tap on
// its bridge, the lease mdctl's dnsmasq gave its MAC and the option 121
// route in it, its neighbour entry on the router's or DHCP port's
// interface, the requests serve last saw from it, and cloud-init's own
// lines on a lab VM's console. Evidence of a fault fails the hop; without
// one it is NOT CHECKED, never passed.
func checkRouteOutside(ctx context.Context, o Options, t *target) Hop {
	h := Hop{Evidence: []string{t.wantLine()}}
	var seen []string // what stands in, for the detail
	if fail := t.tapEvidence(o, &h, &seen); fail {
		return h
	}
	if fail := t.dhcpEvidence(o, &h, &seen); fail {
		return h
	}
	if fail := t.neighbourEvidence(&h, &seen); fail {
		return h
	}
	t.recentEvidence(ctx, o, &h, &seen)
	if fail := t.consoleEvidence(o, &h, &seen); fail {
		return h
	}
	h.NotChecked = true
	h.Detail = "a real VM's route table cannot be read from here; standing in: " + strings.Join(seen, "; ")
	h.Hint = fmt.Sprintf("inside the VM, ip route get %s should say via %s", dataplane.MetadataIPv4, t.wantHop())
	return h
}

// tapEvidence: a guest must be on the port's bridge at all.
func (t *target) tapEvidence(o Options, h *Hop, seen *[]string) (fail bool) {
	tapName := dataplane.TapName(t.port.ID)
	where, inNS := "the host namespace", ""
	if !t.net.OnHost {
		seg := o.Dataplane.SegmentNamespace
		if seg == "" {
			seg = dataplane.DefaultSegmentNamespace
		}
		where, inNS = "namespace "+seg, "ip netns exec "+seg+" "
	}
	tap := dataplane.TapOf(o.Dataplane, t.port.ID, t.net.OnHost)
	switch {
	case tap.Problem != "":
		h.Evidence = append(h.Evidence, "cannot look for "+tapName+": "+tap.Problem)
		*seen = append(*seen, "its tap could not be read")
		return false
	case !tap.Exists:
		h.Detail = fmt.Sprintf("no guest is attached to port %s: no lab guest, and no %s on bridge %s in %s", t.port.ID, tapName, t.net.Bridge, where)
		h.Hint = fmt.Sprintf("mdctl lab up (a lab guest); or attach a VM: mdctl instance show %s --libvirt (or --qemu)", t.instanceName())
		return true
	case tap.Master != t.net.Bridge:
		h.Detail = fmt.Sprintf("%s is on bridge %q, not on the network's %s: the VM is not on this network's L2", tapName, tap.Master, t.net.Bridge)
		h.Hint = fmt.Sprintf("%sip link set %s master %s", inNS, tapName, t.net.Bridge)
		return true
	case !tap.Up:
		h.Detail = tapName + " is down: is the VM running?"
		h.Hint = fmt.Sprintf("start the VM, or %sip link set %s up", inNS, tapName)
		return true
	}
	who := "a VM's"
	if tap.Ours {
		who = "mdctl's, a lab guest's whose namespace is gone"
	}
	h.Evidence = append(h.Evidence, fmt.Sprintf("%s (%s, %s) is up on %s in %s", tapName, tap.Type, who, tap.Master, where))
	*seen = append(*seen, fmt.Sprintf("%s up on %s", tapName, tap.Master))
	return false
}

// dhcpEvidence: what mdctl's DHCP told this MAC.
func (t *target) dhcpEvidence(o Options, h *Hop, seen *[]string) (fail bool) {
	if !t.subnet.EnableDHCP {
		h.Evidence = append(h.Evidence, fmt.Sprintf("mdctl runs no DHCP on subnet %s: the operator's DHCP or the VM's own config must give it %s and gateway %s", t.subnet.SubnetID, t.ip, t.subnet.GatewayIP))
		*seen = append(*seen, "no DHCP of mdctl's here")
		return false
	}
	served := false
	for _, s := range t.desired.DHCPServers {
		served = served || s.NetworkID == t.port.NetworkID
	}
	if !served {
		return false
	}
	l, ok, err := o.Dataplane.DHCPLease(t.port.NetworkID, t.port.MACAddress)
	switch {
	case err != nil:
		h.Evidence = append(h.Evidence, "dnsmasq's lease file: "+err.Error())
	case !ok:
		h.Evidence = append(h.Evidence, fmt.Sprintf("no lease for %s in mdctl's dnsmasq: the VM has not taken DHCP from mdctl (not booted, no DHCP client, or a static address)", t.port.MACAddress))
		*seen = append(*seen, "no DHCP lease")
	default:
		until := "no expiry"
		if !l.Expires.IsZero() {
			until = "until " + l.Expires.UTC().Format(time.RFC3339)
		}
		h.Evidence = append(h.Evidence, fmt.Sprintf("mdctl's dnsmasq leased %s to %s (%s)", l.IP, l.MAC, until))
		*seen = append(*seen, "DHCP lease "+l.IP)
	}
	routes, err := o.Dataplane.DHCPServedRoutes(t.port.NetworkID, t.subnet.SubnetID)
	if err != nil {
		h.Evidence = append(h.Evidence, "dnsmasq's opts: "+err.Error()+" (is serve running?)")
		return false
	}
	want := dataplane.MetadataIPv4 + "/32," + t.wantHop()
	if t.subnet.MetadataHop != "" && !strings.Contains(","+routes+",", ","+want+",") {
		h.Detail = fmt.Sprintf("mdctl's dnsmasq hands subnet %s no route %s (option 121 %q)", t.subnet.SubnetID, strings.Replace(want, ",", " via ", 1), routes)
		h.Hint = "mdctl serve rewrites dnsmasq's opts from the store: is it running? Then renew the VM's lease"
		return true
	}
	h.Evidence = append(h.Evidence, fmt.Sprintf("option 121 served to it: %s", routes))
	*seen = append(*seen, "option 121 with "+strings.Replace(want, ",", " via ", 1))
	return false
}

// neighbourEvidence: the VM on the L2, as the router's or DHCP port's
// namespace saw it.
func (t *target) neighbourEvidence(h *Hop, seen *[]string) (fail bool) {
	ns, dev := t.namespace(), ""
	switch {
	case t.mode == ModeRouter && t.router != nil:
		dev = t.rif.Name
	case t.mode == ModeDHCP && t.dhcp != nil:
		dev = t.dhcp.Interface.Name
	}
	if ns == "" || dev == "" {
		return false
	}
	if ok, _ := dataplane.NamespaceExists(ns); !ok {
		return false // the namespace hop says so
	}
	nb, ok, err := dataplane.NeighbourOf(ns, dev, t.ip)
	switch {
	case err != nil:
		h.Evidence = append(h.Evidence, "neighbours: "+err.Error())
	case !ok:
		h.Evidence = append(h.Evidence, fmt.Sprintf("no neighbour entry for %s on %s in %s: the VM has not spoken to it lately", t.ip, dev, ns))
	case !sameMAC(nb.MAC, t.port.MACAddress):
		h.Detail = fmt.Sprintf("%s answers from %s on %s, not from the port's %s: another machine holds the address (its requests would be taken for this instance's)", t.ip, nb.MAC, dev, t.port.MACAddress)
		h.Hint = fmt.Sprintf("find the machine with MAC %s; the VM must use MAC %s (mdctl instance show %s --libvirt)", nb.MAC, t.port.MACAddress, t.instanceName())
		return true
	default:
		h.Evidence = append(h.Evidence, fmt.Sprintf("neighbour %s lladdr %s %s on %s in %s", t.ip, nb.MAC, nb.State, dev, ns))
		*seen = append(*seen, fmt.Sprintf("%s seen on %s (%s)", t.ip, dev, nb.State))
	}
	return false
}

func sameMAC(a, b string) bool {
	x, err1 := net.ParseMAC(a)
	y, err2 := net.ParseMAC(b)
	return err1 == nil && err2 == nil && x.String() == y.String()
}

// recentShown bounds the requests listed as evidence.
const recentShown = 3

// recentEvidence: what serve last answered this instance.
func (t *target) recentEvidence(ctx context.Context, o Options, h *Hop, seen *[]string) {
	sock := filepath.Join(o.DataDir, admin.SocketName)
	c, err := admin.NewClient(sock)
	if err == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		var evs []events.Event
		if evs, err = c.Recent(ctx, t.view.Instance.ID); err == nil {
			recentLines(h, seen, evs)
			return
		}
	}
	h.Evidence = append(h.Evidence, "serve's recent requests: "+rootCause(err))
}

func recentLines(h *Hop, seen *[]string, evs []events.Event) {
	if len(evs) == 0 {
		h.Evidence = append(h.Evidence, "serve saw no request from this instance since it started")
		*seen = append(*seen, "no request seen by serve")
		return
	}
	for _, e := range evs[max(0, len(evs)-recentShown):] {
		h.Evidence = append(h.Evidence, fmt.Sprintf("serve answered %s %s %d from %s (%s) at %s", e.Method, e.Path, e.Status, e.SourceIP, e.Mode, e.Time.UTC().Format(time.RFC3339)))
	}
	last := evs[len(evs)-1]
	*seen = append(*seen, fmt.Sprintf("serve answered %d requests from it, the last %s ago (%d)", len(evs), time.Since(last.Time).Round(time.Second), last.Status))
}

// consoleTail bounds how much of a console capture is read.
const consoleTail = 1 << 20

// consoleEvidence: cloud-init's own lines on a lab VM's console.
func (t *target) consoleEvidence(o Options, h *Hop, seen *[]string) (fail bool) {
	path := vmspec.ConsolePath(o.DataDir, t.view.Instance.ID)
	text, err := readTail(path, consoleTail)
	if err != nil {
		return false // not a lab VM (or no console yet)
	}
	c := vmspec.ParseConsole(text)
	lines := c.Lines[max(0, len(c.Lines)-5):]
	for _, l := range lines {
		h.Evidence = append(h.Evidence, "console: "+l)
	}
	if c.NoMetadata() {
		what := c.GaveUp
		if what == "" {
			what = "it settled on " + c.Datasource
		}
		h.Detail = "cloud-init in the VM found no metadata service (console " + path + ": " + what + ")"
		h.Hint = fmt.Sprintf("inside the VM: ip route get %s must go via %s; renew its lease (its client must honour option 121), then cloud-init clean --reboot", dataplane.MetadataIPv4, t.wantHop())
		return true
	}
	switch {
	case c.Finished:
		*seen = append(*seen, "cloud-init finished with "+c.Datasource)
	case len(c.Failures) > 0:
		*seen = append(*seen, "cloud-init is retrying the metadata service")
	case len(c.Stages) > 0:
		*seen = append(*seen, "cloud-init ran "+strings.Join(c.Stages, ", "))
	}
	return false
}

// readTail reads at most the last n bytes of a file.
func readTail(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		if _, err := f.Seek(-n, io.SeekEnd); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(io.LimitReader(f, n))
	return string(b), err
}
