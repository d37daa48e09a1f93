package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
)

// replicaPort is a port free on both loopback addresses: nova_metadata_port
// is one port for every host nova_metadata_host lists, as in neutron.
func replicaPort(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		free := true
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		ln.Close()
		if free {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", hosts)
	return 0
}

// TestAPIReplicaDeadAgentUsesNext: two `mdctl serve --components api`
// processes on 127.0.0.2 and 127.0.0.3 (one port), and an agent+proxy
// serve whose nova_metadata_host lists both. The first dies (kill -9: its
// port refuses) or freezes (SIGSTOP: the kernel still accepts and
// acknowledges, nothing answers): the guest's next request through the
// real chain is answered by the second, cloud-init's reader reads the
// instance's own data, and the agent logs the change once.
func TestAPIReplicaDeadAgentUsesNext(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"kill -9", syscall.SIGKILL}, {"SIGSTOP", syscall.SIGSTOP}} {
		t.Run(strings.ReplaceAll(tc.name, " ", ""), func(t *testing.T) { replicaDies(t, tc.name, tc.sig) })
	}
}

func replicaDies(t *testing.T, how string, sig syscall.Signal) {
	w := testworld.New(t, testworld.RoutedTopo)
	bin := buildMdctl(t)
	hostA, hostB := "127.0.0.2", "127.0.0.3"
	port := replicaPort(t, hostA, hostB)
	w.Set("nova_metadata_host", hostA+","+hostB)
	w.Set("nova_metadata_port", strconv.Itoa(port))
	w.Set("metadata_rate_limiting.rate_limit_enabled", "false")
	db := "sqlite://" + filepath.Join(w.Dir, "mdctl.db")
	sfx := testworld.Suffix()
	api := func(name, host string) *serveProc {
		return startServeArgs(t, bin, "--data-dir", t.TempDir(), "--db", db, "serve", "--node", name+"-"+sfx,
			"--components", "api", "--api-listen", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	first := api("api-a", hostA)
	api("api-b", hostB)
	agent := startServeArgs(t, bin, "--data-dir", w.Dir, "serve", "--node", "agent-"+sfx, "--components", "agent,proxy")
	w.LabUp()
	ns := w.GuestNS("vm1")
	readsAs(t, ns, "vm1", "with both replicas up")

	if sig == syscall.SIGKILL {
		if _, inGrace := first.stop(syscall.SIGKILL, 10*time.Second); !inGrace {
			t.Fatal("the first API did not die of SIGKILL")
		}
	} else {
		if err := first.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { first.cmd.Process.Signal(syscall.SIGCONT) }) // before its stop
	}
	start := time.Now()
	// curl's own limit is cloud-init's 10 s per request.
	out, _, _ := testworld.InNS(ns, 20*time.Second, "curl", "-s", "-m", "10", "-w", "\n%{http_code}", "http://169.254.169.254/openstack/latest/meta_data.json")
	took := time.Since(start)
	body, code, _ := strings.Cut(out, "\n")
	t.Logf("first guest request after %s of the first API: %s in %v", how, code, took.Round(time.Millisecond))
	if code != "200" || !strings.Contains(body, w.Instance("vm1").ID) {
		t.Fatalf("first request after %s: %s %q, want the second replica's answer", how, code, body)
	}
	readsAs(t, ns, "vm1", "with the first replica dead")

	want := fmt.Sprintf("down=http://%s:%d using=http://%s:%d", hostA, port, hostB, port)
	var warns []string
	testworld.WaitFor(t, 5*time.Second, "the agent's failover warning", func() error {
		b, err := os.ReadFile(agent.log)
		if err != nil {
			return err
		}
		warns = nil
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "nova_metadata_host") {
				warns = append(warns, l)
			}
		}
		if len(warns) == 0 {
			return fmt.Errorf("no warning in %s", agent.log)
		}
		return nil
	})
	if len(warns) != 1 || !strings.Contains(warns[0], want) {
		t.Errorf("want one WARN with %q; got %q", want, warns)
	}
}
