package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

// labRow is what `mdctl lab up -o json` says of one guest.
type labRow struct {
	Instance  string `json:"instance"`
	Namespace string `json:"namespace"`
}

// labUpBin runs `mdctl lab up -o json` on w's data dir and returns its
// guests' namespaces by instance and what it said on stderr.
func labUpBin(t *testing.T, w *testworld.World, bin string) (map[string]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--data-dir", w.Dir, "lab", "up", "-o", "json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("lab up took %v; stderr:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	if err != nil {
		t.Fatalf("mdctl lab up: %v\n%s", err, stdout.String())
	}
	var rows []labRow
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		t.Fatalf("lab up -o json: %v\n%s", err, stdout.String())
	}
	ns := map[string]string{}
	for _, r := range rows {
		ns[r.Instance] = r.Namespace
	}
	return ns, stderr.String()
}

// TestLabUpWaitsForServesDHCP: `mdctl serve &` and `mdctl lab up` started
// at once, as the README's tour does: lab up waits for serve's DHCP
// servers, so both guests hold a real option 121 lease (proto dhcp), not
// the static routes of a lab that found no DHCP server yet.
func TestLabUpWaitsForServesDHCP(t *testing.T) {
	requireDHCP(t)
	w := testworld.New(t, dhcpTopo)
	w.Set("enable_isolated_metadata", "true")
	bin := buildMdctl(t)
	apiAddr := freeAPIAddr(t, w)
	startServeBin(t, w, bin, apiAddr)
	ns, stderr := labUpBin(t, w, bin)
	if strings.Contains(stderr, "static routes") {
		t.Errorf("lab up fell back to static routes:\n%s", stderr)
	}
	if n := strings.Count(stderr, "waiting for serve's DHCP"); n > 1 {
		t.Errorf("lab up said it waits %d times, want at most once:\n%s", n, stderr)
	}
	t.Logf("lab up waited for serve: %v", strings.Contains(stderr, "waiting for serve's DHCP"))
	assertDHCPRoute(t, w, ns["vm-routed"], "10.90.21.1")
	assertDHCPRoute(t, w, ns["vm-iso"], "10.90.22.2")
	waitServing(t, ns["vm-iso"])
	// What lab up waited on: serve's count of its DHCP servers.
	out, err := exec.Command(bin, "--data-dir", w.Dir, "status", "-o", "json").Output()
	if err != nil {
		t.Fatalf("mdctl status: %v", err)
	}
	var st struct {
		Planned *int `json:"dhcp_planned"`
		Running *int `json:"dhcp_servers"`
	}
	if err := json.Unmarshal(out, &st); err != nil || st.Planned == nil || st.Running == nil || *st.Planned != 2 || *st.Running != 2 {
		t.Errorf("status: dhcp_planned/dhcp_servers not 2/2 (%v):\n%s", err, out)
	}
}

// TestLabUpWithoutServeSaysSoOnce: with no serve on the data dir, lab up
// says so in one line, not once per guest, and gives the guests the
// static routes DHCP would give.
func TestLabUpWithoutServeSaysSoOnce(t *testing.T) {
	requireDHCP(t)
	w := testworld.New(t, dhcpTopo)
	w.Set("enable_isolated_metadata", "true")
	bin := buildMdctl(t)
	start := time.Now()
	ns, stderr := labUpBin(t, w, bin)
	t.Logf("lab up without serve: %v", time.Since(start).Round(time.Millisecond))
	if n := strings.Count(stderr, "no mdctl serve runs on data dir "+w.Dir); n != 1 {
		t.Errorf("lab up said there is no serve %d times, want once:\n%s", n, stderr)
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
		t.Errorf("lab up wrote %d lines on stderr, want the one:\n%s", lines, stderr)
	}
	for inst, hop := range map[string]string{"vm-routed": "10.90.21.1", "vm-iso": "10.90.22.2"} {
		if r := metadataRoute(t, ns[inst]); !strings.Contains(r, "via "+hop) || !strings.Contains(r, "proto static") {
			t.Errorf("%s: metadata route %q, want via %s proto static", inst, r, hop)
		}
	}
}

// labClients are the pids whose command line names a file under dir.
func labClients(t *testing.T, dir string) []int {
	t.Helper()
	return pidsWhere(t, func(_ []string, cmdline string) bool { return strings.Contains(cmdline, dir+"/") })
}

// standIn starts a process whose command line gives -lf a lease file at
// path, as a dhclient's does, that mdctl did not start for this data
// dir's guests; it runs until the test ends.
func standIn(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", "read x", "not-ours", "-lf", path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestStopDHCPClientWithoutPidFile: lab down ends the lab's dhclients
// although their pid files are gone, one of them also its namespace
// (deleted under it: the client holds it alive), found by the state files
// on their command lines; processes that name a neighbour's files (a
// guest of a longer name, a data dir whose state dir's name starts as
// this one's) are left alone.
func TestStopDHCPClientWithoutPidFile(t *testing.T) {
	w, _ := dhcpWorld(t, "routed", "vm-routed", func(w *testworld.World) { w.Set("enable_isolated_metadata", "true") })
	waitDHCPServer(t, w, "iso")
	w.LabUp()
	routed, iso := w.GuestNS("vm-routed"), w.GuestNS("vm-iso")
	assertDHCPRoute(t, w, routed, "10.90.21.1")
	assertDHCPRoute(t, w, iso, "10.90.22.2")
	lab := filepath.Dir(w.Dataplane.GuestStateDir(routed))
	before := labClients(t, lab)
	if len(before) < 2 {
		t.Fatalf("%d dhclients under %s, want one per guest", len(before), lab)
	}
	neighbours := []*exec.Cmd{
		standIn(t, filepath.Join(lab, iso+"x", "dhclient.leases")),
		standIn(t, filepath.Join(filepath.Dir(lab)+"x", "lab", iso, "dhclient.leases")),
	}
	for _, ns := range []string{routed, iso} {
		if err := os.Remove(filepath.Join(w.Dataplane.GuestStateDir(ns), "dhclient.pid")); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("ip", "netns", "delete", routed).CombinedOutput(); err != nil {
		t.Fatalf("ip netns delete %s: %v %s", routed, err, out)
	}
	if err := dataplane.LabDown(context.Background(), w.Dataplane); err != nil {
		t.Fatal(err)
	}
	if left := labClients(t, lab); len(left) > 0 {
		t.Errorf("lab down left dhclients %v of %v under %s", left, before, lab)
	}
	for _, n := range neighbours {
		if err := n.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("lab down ended %v, not its own: %v", n.Args, err)
		}
	}
}
