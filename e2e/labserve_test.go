package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
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
