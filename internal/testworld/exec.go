package testworld

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/judge"
)

// RequireRoot skips t unless it may build namespaces, veths and iptables
// rules: root, with ip and iptables on PATH.
func RequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veths and iptables rules")
	}
	for _, bin := range []string{"iptables", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (make test installs it)", bin)
		}
	}
}

// Suffix is a random tag that makes a name one test's own.
func Suffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFor polls cond until it returns nil, and fails t with cond's last
// error after timeout: the data plane converges asynchronously.
func WaitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, timeout, err)
}

// InNS runs argv inside the network namespace ns (a guest's, a router's,
// a DHCP server's), killed after timeout.
func InNS(ns string, timeout time.Duration, argv ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Curl fetches url from inside ns with curl (5 s at most) and returns the
// status and body; status 0 means no HTTP answer at all.
func Curl(ns, url string, headers ...string) (status int, body string) {
	argv := []string{"curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"}
	for _, h := range headers {
		argv = append(argv, "-H", h)
	}
	out, _, _ := InNS(ns, 10*time.Second, append(argv, url)...)
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return 0, out
	}
	status, _ = strconv.Atoi(strings.TrimSpace(out[i+1:])) // "000": no answer
	return status, out[:i]
}

// ModuleRoot is the folder holding go.mod, found upwards from the test's
// working directory (its package's folder).
func ModuleRoot(t *testing.T) string {
	t.Helper()
	dir, err := judge.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Crawl is cloud-init's reader's verdict (tools/cloudinit/crawl's JSON).
type Crawl = judge.Crawl

// CrawlTool is cloud-init's reader harness, tools/cloudinit/crawl in the
// repository (make test-deps sets its judges up).
func CrawlTool(t *testing.T) string {
	t.Helper()
	return filepath.Join(ModuleRoot(t), judge.ToolPath)
}

// Judges are the cloud-init versions mdctl is judged by
// (tools/cloudinit/judges), the default first: table tests run each.
func Judges(t *testing.T) []string {
	t.Helper()
	vs, err := judge.Versions(ModuleRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// RunCrawl runs the default judge's crawl MODE [ARGS] inside ns, as a
// guest's cloud-init would read its metadata, and fails t unless cloud-init
// accepted what it read.
func RunCrawl(t *testing.T, ns, mode string, args ...string) Crawl {
	t.Helper()
	return RunCrawlWith(t, "", ns, mode, args...)
}

// RunCrawlWith is RunCrawl with the judge of cloud-init version version
// ("" for the default).
func RunCrawlWith(t *testing.T, version, ns, mode string, args ...string) Crawl {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := judge.Command(ctx, ModuleRoot(t), GuestPrefix(ns), version, mode, args...)
	c, stderr, err := judge.Run(cmd)
	if err != nil {
		t.Fatalf("in %s: %v\nstderr: %s", ns, err, stderr)
	}
	return c
}

// GuestPrefix runs a command as in the lab guest of namespace ns: in its
// network namespace (ip netns exec, which also shows it its own
// /sys/class/net), with an empty /etc/resolv.conf in a private mount
// namespace. The lab's DHCP script applies the lease's addresses and
// routes, not its name servers, so a lab guest has no resolver of its
// own, and ip netns exec would show it the host's, whose server the guest
// cannot reach: cloud-init's datasources (is_resolvable_url) would wait
// out its timeouts, 20 s a crawl.
func GuestPrefix(ns string) []string {
	return []string{"ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount --bind /dev/null /etc/resolv.conf && exec "$0" "$@"`}
}

// Port is the port of a host:port (StartServe's apiAddr), as settings such
// as nova_metadata_port take it.
func Port(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
