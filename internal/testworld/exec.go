package testworld

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// Crawl is cloud-init's reader's verdict (cloudinit-crawl's JSON).
type Crawl struct {
	InstanceID     string         `json:"instance_id"`
	Name           string         `json:"name"`
	Hostname       string         `json:"hostname"`
	PublicKeys     map[string]any `json:"public_keys"`
	UserdataLen    int            `json:"userdata_len"`
	UserdataSHA256 string         `json:"userdata_sha256"`
	NetworkConfig  bool           `json:"network_config"`
	Version        any            `json:"version"`
	Keys           []string       `json:"keys"`
	Error          string         `json:"error"`
}

// CrawlTool is cloud-init's reader, beside the module in ../shared/tools.
func CrawlTool(t *testing.T) string {
	t.Helper()
	return filepath.Join(filepath.Dir(ModuleRoot(t)), "shared", "tools", "cloudinit-crawl")
}

// RunCrawl runs cloudinit-crawl MODE [ARGS] inside ns, as a guest's
// cloud-init would read its metadata, and fails t unless cloud-init
// accepted what it read.
func RunCrawl(t *testing.T, ns, mode string, args ...string) Crawl {
	t.Helper()
	tool := CrawlTool(t)
	if _, err := os.Stat(tool); err != nil {
		t.Fatalf("cloud-init reader missing at %s (make test sets it up): %v", tool, err)
	}
	out, stderr, err := InNS(ns, 60*time.Second, append([]string{tool, mode}, args...)...)
	var c Crawl
	if jerr := json.Unmarshal([]byte(out), &c); jerr != nil {
		t.Fatalf("cloudinit-crawl %s in %s: %v\nstdout: %s\nstderr: %s", mode, ns, errors.Join(err, jerr), out, stderr)
	}
	if err != nil || c.Error != "" {
		t.Fatalf("cloud-init rejected the %s metadata in %s: %v %s\nstderr: %s", mode, ns, err, c.Error, stderr)
	}
	return c
}

// Port is the port of a host:port (StartServe's apiAddr), as settings such
// as nova_metadata_port take it.
func Port(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
