package testworld

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// ForeignPort is the link Host puts on each of its bridges, standing for
// whatever else the operator has there (an uplink, another VM).
const ForeignPort = "op-"

// Host makes a namespace that stands for the host, holding the operator's
// own Linux bridges (each up, with a foreign port ForeignPort+<i> on it),
// and points the world's data plane at it (Dataplane.HostNamespace). Call
// it before StartServe; a topology's `bridge:` names one of these. It is
// removed in t.Cleanup after the world's own teardown.
func (w *World) Host(bridges ...string) string {
	w.t.Helper()
	name := NamePrefix + "host-" + Suffix()
	if _, err := dataplane.EnsureNamespace(name); err != nil {
		w.t.Fatal(err)
	}
	w.hosts = append(w.hosts, name) // World.close removes it after the data plane
	w.mustIn(name, "ip", "link", "set", "lo", "up")
	for i, br := range bridges {
		port := fmt.Sprintf("%s%d", ForeignPort, i)
		w.mustIn(name, "ip", "link", "add", br, "type", "bridge")
		w.mustIn(name, "ip", "link", "set", br, "up")
		w.mustIn(name, "ip", "link", "add", port, "type", "veth", "peer", "name", port+"p")
		w.mustIn(name, "ip", "link", "set", port, "master", br, "up")
	}
	w.Dataplane.HostNamespace = name
	return name
}

// OutsideVM stands for a VM outside the lab (libvirt's or the operator's
// QEMU) on the instance's first port, on a network attached to a Host
// bridge: a namespace whose eth0 carries the port's MAC, its peer named
// tap<port[:11]> on the network's bridge, made as a VM's tap would be, not
// by mdctl. Nothing configures its address: the test runs its DHCP client
// (dataplane.GuestLease) or sets a static one, as the VM's OS would.
func (w *World) OutsideVM(instance string) (ns string, port store.Port) {
	w.t.Helper()
	if w.Dataplane.HostNamespace == "" {
		w.t.Fatal("OutsideVM needs Host first")
	}
	in := w.Instance(instance)
	ports, err := w.Store.ListPorts(context.Background(), store.PortFilter{DeviceIDs: []string{in.ID}})
	if err != nil || len(ports) == 0 {
		w.t.Fatalf("instance %s: no port (%v)", instance, err)
	}
	port = ports[0]
	bridge, onHost := dataplane.NetworkBridge(w.Network(port.NetworkID))
	if !onHost {
		w.t.Fatalf("instance %s: network %s is not on a Host bridge", instance, port.NetworkID)
	}
	ns = NamePrefix + "ext-" + Suffix()
	if _, err := dataplane.EnsureNamespace(ns); err != nil {
		w.t.Fatal(err)
	}
	w.outside = append(w.outside, ns)
	host, tap := w.Dataplane.HostNamespace, dataplane.TapName(port.ID)
	w.mustIn(host, "ip", "link", "add", tap, "type", "veth", "peer", "name", dataplane.GuestInterface, "netns", ns)
	w.mustIn(host, "ip", "link", "set", tap, "master", bridge, "up")
	w.mustIn(ns, "ip", "link", "set", "lo", "up")
	w.mustIn(ns, "ip", "link", "set", dataplane.GuestInterface, "address", port.MACAddress, "up")
	return ns, port
}

// mustIn runs argv in ns and fails the test when it fails.
func (w *World) mustIn(ns string, argv ...string) {
	w.t.Helper()
	if _, stderr, err := InNS(ns, 20*time.Second, argv...); err != nil {
		w.t.Fatalf("%s in %s: %v: %s", strings.Join(argv, " "), ns, err, stderr)
	}
}

// closeOutside stops the outside VMs' DHCP clients and removes them, then
// the host stand-ins, after the data plane's teardown.
func (w *World) closeOutside() {
	for _, ns := range w.outside {
		dataplane.StopGuestLease(w.Dataplane, ns)
		dataplane.DeleteNamespace(ns)
	}
	for _, ns := range w.hosts {
		dataplane.DeleteNamespace(ns)
	}
}
