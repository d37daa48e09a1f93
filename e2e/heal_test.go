package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/events"
)

// repairs reads mdctl_dataplane_repairs_total from the serve's admin socket.
func repairs(t *testing.T, dir string) int {
	t.Helper()
	n, ok := value(scrape(t, dir), events.DataplaneRepairs)
	if !ok {
		t.Fatalf("no %s in /metrics", events.DataplaneRepairs)
	}
	return int(n)
}

// TestServeHealsKernelState: rules flushed and a namespace deleted by
// someone else, with the store unchanged, come back within seconds, and
// /metrics counts the repairs.
func TestServeHealsKernelState(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{Resync: time.Second})
	w.LabUp()
	guest, router := w.GuestNS("vm1"), w.RouterNS("r1")
	waitServing(t, guest)
	if n := repairs(t, w.Dir); n != 0 {
		t.Fatalf("repairs before anything was broken: %d", n)
	}

	if _, stderr, err := testworld.InNS(router, 10*time.Second, "iptables", "-t", "nat", "-F"); err != nil {
		t.Fatalf("flush: %v %s", err, stderr)
	}
	testworld.WaitFor(t, 20*time.Second, "the REDIRECT rule restored", func() error {
		if !strings.Contains(ruleDump(t, router), "REDIRECT") {
			return fmt.Errorf("no REDIRECT in %s", router)
		}
		return nil
	})
	waitServing(t, guest)
	// The rules are back inside the pass that counts them: wait for the count.
	var afterFlush int
	testworld.WaitFor(t, 10*time.Second, "the restored rules counted", func() error {
		if afterFlush = repairs(t, w.Dir); afterFlush == 0 {
			return fmt.Errorf("%s is 0", events.DataplaneRepairs)
		}
		return nil
	})

	before := inode(t, router)
	// serve may rebuild the namespace between DeleteNamespace's unmount and
	// its unlink (then the unlink finds a mount: EBUSY); the new inode is
	// the proof that it was deleted and made again.
	_ = dataplane.DeleteNamespace(router)
	testworld.WaitFor(t, 20*time.Second, "the router namespace made again", func() error {
		if ok, err := dataplane.NamespaceExists(router); !ok {
			return fmt.Errorf("%s missing (%v)", router, err)
		}
		if inode(t, router) == before {
			return fmt.Errorf("%s is still the old namespace", router)
		}
		return nil
	})
	waitServing(t, guest)
	testworld.WaitFor(t, 10*time.Second, "the rebuilt namespace counted", func() error {
		if n := repairs(t, w.Dir); n <= afterFlush {
			return fmt.Errorf("repairs %d, want more than %d", n, afterFlush)
		}
		return nil
	})
}

// inode is the namespace's identity: its nsfs inode.
func inode(t *testing.T, ns string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dataplane.NetnsDir, ns), &st); err != nil {
		return 0
	}
	return st.Ino
}
