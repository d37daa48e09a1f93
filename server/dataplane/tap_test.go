package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// A VM's tap: on its network's bridge in the segment namespace, marked as
// the VM's, refused while a link of that name exists, and gone as soon as
// its only file (QEMU's, in production) is closed.
func TestPlugVMTapLivesWithItsFile(t *testing.T) {
	needRoot(t)
	opts := testOptions(t)
	g := Guest{InstanceID: "inst-1", PortID: "0123456789abcdef", NetworkID: "fedcba9876543210", MAC: "fa:16:3e:00:00:01", MTU: 1450}
	f, err := PlugVM(context.Background(), opts, g)
	if err != nil {
		t.Fatal(err)
	}
	spec := VMTap(opts, g)
	seg, err := openNS(opts.SegmentNamespace)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	tap, err := seg.linkByName(spec.Name)
	if err != nil || tap == nil {
		t.Fatalf("tap %s: %v", spec.Name, err)
	}
	br, _ := seg.linkByName(BridgeName(g.NetworkID))
	if tt, ok := tap.(*netlink.Tuntap); !ok || tt.Mode != netlink.TUNTAP_MODE_TAP || br == nil || tap.Attrs().MasterIndex != br.Attrs().Index || tap.Attrs().MTU != 1450 {
		t.Errorf("tap %+v (bridge %v): want a tap on %s with MTU 1450", tap.Attrs(), br, BridgeName(g.NetworkID))
	}
	if exists, owner, err := TapOwner(opts.SegmentNamespace, spec.Name); err != nil || !exists || owner != g.InstanceID {
		t.Errorf("TapOwner = %v, %q, %v; want true, %s", exists, owner, err, g.InstanceID)
	}
	if _, err := OpenTap(spec); err == nil || !strings.Contains(err.Error(), "create") {
		t.Errorf("a second tap of the same name: %v; want refused", err)
	}
	// serve's reconciler sweeps the segment: a VM's tap is not its to remove.
	if err := sweepSegment(seg, Desired{}); err != nil {
		t.Fatal(err)
	}
	if exists, _, _ := TapOwner(opts.SegmentNamespace, spec.Name); !exists {
		t.Error("sweepSegment removed the VM's tap")
	}
	f.Close()
	if exists, _, err := TapOwner(opts.SegmentNamespace, spec.Name); err != nil || exists {
		t.Errorf("tap after its file closed: exists %v, %v", exists, err)
	}
}
