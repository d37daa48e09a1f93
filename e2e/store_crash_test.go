package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/store"
)

// The store under crashes and concurrent writers, through the real binary.

// bigTopology is a topology of n instances on one /16 network.
func bigTopology(n int) string {
	var b strings.Builder
	b.WriteString("networks:\n  - {name: big, project: demo, cidr: 10.91.0.0/16}\ninstances:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: vm%05d, project: demo, network: big, ip: 10.91.%d.%d}\n", i, 1+i/250, 1+i%250)
	}
	return b.String()
}

// mdctlIn runs the binary on data dir dir and fails the test on an error.
func mdctlIn(t *testing.T, bin, dir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"--data-dir", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// storeCounts opens dir's store and counts instances and ports.
func storeCounts(t *testing.T, dir string) (instances, ports int) {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(dir, "mdctl.db"))
	if err != nil {
		t.Fatalf("open the store after the kill: %v", err)
	}
	defer st.Close()
	ctx := context.Background()
	ins, err := st.ListInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := st.ListPorts(ctx, store.PortFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(ins), len(ps)
}

// TestKill9DuringApplyAllOrNothing: `mdctl apply` of 10,000 instances,
// killed with SIGKILL at random points of its run, leaves the store as it
// was before (one seed instance) or as after (all of them), never between.
func TestKill9DuringApplyAllOrNothing(t *testing.T) {
	const n = 10000
	bin := buildMdctl(t)
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte(bigTopology(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(seed, []byte(bigTopology(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// One whole run tells how long an apply takes here, and what before
	// and after are (the network's DHCP port is a port too).
	full := t.TempDir()
	mdctlIn(t, bin, full, "apply", "-f", seed)
	_, portsBefore := storeCounts(t, full)
	start := time.Now()
	mdctlIn(t, bin, full, "apply", "-f", big)
	whole := time.Since(start)
	i, portsAfter := storeCounts(t, full)
	if i != n || portsAfter != portsBefore+n-1 {
		t.Fatalf("a whole apply left %d instances, %d ports; want %d and %d", i, portsAfter, n, portsBefore+n-1)
	}
	t.Logf("apply of %d instances took %v", n, whole.Round(time.Millisecond))

	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 14))
	outcomes := map[string]int{}
	for try := range 4 {
		dir := t.TempDir()
		mdctlIn(t, bin, dir, "apply", "-f", seed)
		at := time.Duration(r.Int64N(int64(whole)))
		cmd := exec.Command(bin, "--data-dir", dir, "apply", "-f", big)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(at)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		i, p := storeCounts(t, dir)
		switch {
		case i == 1 && p == portsBefore:
			outcomes["before"]++
		case i == n && p == portsAfter:
			outcomes["after"]++
		default:
			t.Errorf("try %d, killed %v into the apply: %d instances, %d ports; want 1 and %d (before) or %d and %d (after)",
				try, at.Round(time.Millisecond), i, p, portsBefore, n, portsAfter)
		}
	}
	t.Logf("kill -9 at random points of the apply: %v", outcomes)
}

// TestConcurrentCLIWritesNeverBusy: four shells create instances and set
// settings at once while serve runs, guests fetch and a fifth shell
// applies 10,000 instances (one transaction of several seconds, longer
// than SQLite's busy timeout); no command fails
// (no SQLITE_BUSY, no "database is locked" reaches a user) and every
// write is in the store afterwards.
func TestConcurrentCLIWritesNeverBusy(t *testing.T) {
	w := newLoadedWorld(t)
	const shells, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan string, shells*each*2+1)
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte(bigTopology(10000)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wg.Go(func() {
		if out, err := exec.Command(w.bin, "--data-dir", w.Dir, "apply", "-f", big).CombinedOutput(); err != nil {
			errs <- fmt.Sprintf("mdctl apply of 10,000 instances: %v: %s", err, out)
		}
	})
	time.Sleep(time.Second) // the apply is in its transaction
	for s := range shells {
		wg.Go(func() {
			for i := range each {
				for _, args := range [][]string{
					{"instance", "create", fmt.Sprintf("sh%d-%02d", s, i), "--project", "demo", "--network", "net1"},
					{"config", "set", "metadata_cache_expiration", fmt.Sprint(10 + s*each + i)},
				} {
					cmd := exec.Command(w.bin, append([]string{"--data-dir", w.Dir}, args...)...)
					if out, err := cmd.CombinedOutput(); err != nil {
						errs <- fmt.Sprintf("mdctl %s: %v: %s", strings.Join(args, " "), err, out)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	t.Logf("%d shells × %d instance creates and config sets beside a loaded serve took %v", shells, each, time.Since(start).Round(time.Millisecond))
	for e := range errs {
		t.Error(e)
	}
	ins, err := w.Store.ListInstances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	made := 0
	for _, in := range ins {
		if strings.HasPrefix(in.Name, "sh") {
			made++
		}
	}
	if all := len(ins); all < 10000+shells*each {
		t.Errorf("%d instances in the store, want the 10,000 applied and the shells' %d", all, shells*each)
	}
	if made != shells*each {
		t.Errorf("%d of the %d instances the shells created are in the store", made, shells*each)
	}
}
