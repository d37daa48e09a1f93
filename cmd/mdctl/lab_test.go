package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/store"
)

// TestLabExecSeesTheGuestsSys: lab exec runs its command as `ip netns exec`
// would, with /sys remounted for the guest's namespace, so
// /sys/class/net lists the guest's eth0 and lo and none of the host's
// links (cloud-init finds its NIC by MAC there: "Unable to find a system
// nic" otherwise), and its mounts stay its own.
func TestLabExecSeesTheGuestsSys(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.LabUp()
	host, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	io, _, out, errOut := testIO()
	opts := &labOptions{
		IO:        io,
		Store:     func(context.Context) (store.Store, error) { return store.OpenSQLite(filepath.Join(w.Dir, "mdctl.db")) },
		Dataplane: w.Dataplane,
		Instance:  "vm1",
		Argv:      []string{"sh", "-c", "ls /sys/class/net; cat /sys/class/net/eth0/address"},
	}
	if err := labExecRun(context.Background(), opts); err != nil {
		t.Fatalf("lab exec: %v (%s)", err, errOut)
	}
	lines := strings.Fields(out.String())
	if len(lines) != 3 || lines[0] != "eth0" || lines[1] != "lo" || lines[2] != portMAC(t, w, "vm1") {
		t.Fatalf("lab exec saw %q, want eth0, lo and vm1's MAC", lines)
	}
	for _, e := range host {
		if n := e.Name(); n != "lo" && n != "eth0" && strings.Contains(out.String(), n) {
			t.Errorf("the guest sees the host's link %s", n)
		}
	}
	// The guest's sysfs never reached the host's mount table.
	if after, err := os.ReadDir("/sys/class/net"); err != nil || len(after) != len(host) {
		t.Errorf("the host's /sys/class/net changed: %d links, then %d (%v)", len(host), len(after), err)
	}
}

// portMAC is the MAC of the instance's first port.
func portMAC(t *testing.T, w *testworld.World, instance string) string {
	t.Helper()
	v, err := w.Store.InstanceView(context.Background(), instance)
	if err != nil || len(v.Ports) == 0 {
		t.Fatalf("instance %s: %v", instance, err)
	}
	return v.Ports[0].Port.MACAddress
}
