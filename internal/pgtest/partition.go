package pgtest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// StartPartitionable is Start with the server in a network namespace of
// its own, reached over TCP (TCPURL) across a veth pair from the test's
// namespace, so that the test can cut it off as a network partition does:
// Drop makes the namespace's firewall drop every packet to the server's
// port (no refusal, no reset: the client hears nothing), Undrop lets them
// through again. The unix socket (URL, and the cluster's own
// administration) is not cut off. Needs root, else the test is skipped;
// the namespace, its link and rules go in t.Cleanup, after the server.
func StartPartitionable(t testing.TB) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pgtest: a partitionable server needs root (a network namespace and iptables)")
	}
	bin, err := Bin()
	if err != nil {
		if os.Getenv(SkipEnv) == "skip" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	ns, host := partitionNS(t)
	c, err := startIn(bin, ns, host)
	if c != nil {
		t.Cleanup(func() {
			if err := c.Stop(); err != nil {
				t.Errorf("stop postgres: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// partitionNS makes a namespace joined to the test's by a veth pair on a
// random /30 of 10.231.0.0/16, and returns it with the address of its end.
func partitionNS(t testing.TB) (ns, host string) {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	r := binary.BigEndian.Uint32(b[:])
	sfx := fmt.Sprintf("%06x", r&0xffffff)
	ns, outer, inner := "pgtest-"+sfx, "pgto"+sfx, "pgti"+sfx
	third, fourth := (r>>8)&0xff, (r&0x3f)*4 // the /30's network address
	mine := fmt.Sprintf("10.231.%d.%d", third, fourth+1)
	theirs := fmt.Sprintf("10.231.%d.%d", third, fourth+2)
	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", outer).Run() // its peer goes with it
		exec.Command("ip", "netns", "del", ns).Run()
	})
	ipCmd(t, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
	ipCmd(t, "addr", "add", mine+"/30", "dev", outer)
	ipCmd(t, "link", "set", outer, "up")
	ipCmd(t, "-n", ns, "addr", "add", theirs+"/30", "dev", inner)
	ipCmd(t, "-n", ns, "link", "set", inner, "up")
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	return ns, theirs
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Drop cuts a StartPartitionable server off: every packet to its port is
// dropped inside its namespace, so connections neither fail nor answer.
func (c *Cluster) Drop(t testing.TB) { c.dropRule(t, "-I") }

// Undrop lets the packets Drop dropped through again.
func (c *Cluster) Undrop(t testing.TB) { c.dropRule(t, "-D") }

func (c *Cluster) dropRule(t testing.TB, op string) {
	t.Helper()
	if c.netns == "" {
		t.Fatal("pgtest: Drop and Undrop need a StartPartitionable cluster")
	}
	args := []string{"netns", "exec", c.netns, "iptables", "-w", op, "INPUT",
		"-p", "tcp", "--dport", strconv.Itoa(c.port), "-j", "DROP"}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
