package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testlog"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// waitServing waits until a guest gets an answer through the whole chain.
func waitServing(t *testing.T, ns string) {
	t.Helper()
	testworld.WaitFor(t, 10*time.Second, "metadata through the chain", func() error {
		code, body := testworld.Curl(ns, "http://169.254.169.254/openstack")
		if code != 200 {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return nil
	})
}

// readsAs waits until the guest in ns is served, then checks that
// cloud-init's OpenStack reader there gets instance's own metadata; how
// names the path the request took, for the failure message.
func readsAs(t *testing.T, ns, instance, how string) {
	t.Helper()
	waitServing(t, ns)
	if c := testworld.RunCrawl(t, ns, "openstack"); c.Name != instance {
		t.Errorf("%s the guest read %q, want %q", how, c.Name, instance)
	}
}

// TestCloudInitThroughRouter: cloud-init's OpenStack and EC2 readers in a
// lab guest cross route → qrouter namespace → REDIRECT → proxy → socket →
// agent → API and get that instance's own data.
func TestCloudInitThroughRouter(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	ns1 := w.GuestNS("vm1")
	waitServing(t, ns1)

	vm1 := w.Instance("vm1")
	os := testworld.RunCrawl(t, ns1, "openstack")
	if os.InstanceID != vm1.ID || os.Name != "vm1" || os.Hostname != "vm1.novalocal" {
		t.Errorf("openstack reader got id=%s name=%s hostname=%s, want %s vm1 vm1.novalocal", os.InstanceID, os.Name, os.Hostname, vm1.ID)
	}
	if os.UserdataSHA256 != sha(vm1.UserData) {
		t.Errorf("user data: got %d bytes sha %s, want %d bytes", os.UserdataLen, os.UserdataSHA256, len(vm1.UserData))
	}
	if !os.NetworkConfig {
		t.Error("openstack reader found no network_data")
	}
	if fmt.Sprint(os.PublicKeys["default"]) != vm1.Keys[0].Data {
		t.Errorf("public keys: got %v", os.PublicKeys)
	}
	ec2 := testworld.RunCrawl(t, ns1, "ec2")
	if ec2.InstanceID != fmt.Sprintf("i-%08x", vm1.EC2ID) || ec2.Hostname != "vm1.novalocal" {
		t.Errorf("ec2 reader got instance-id=%s hostname=%s", ec2.InstanceID, ec2.Hostname)
	}
	if ec2.UserdataSHA256 != sha(vm1.UserData) {
		t.Errorf("ec2 user data differs: %d bytes", ec2.UserdataLen)
	}

	// The second guest on the same router is told apart by its address.
	vm2 := testworld.RunCrawl(t, w.GuestNS("vm2"), "openstack")
	if vm2.Name != "vm2" {
		t.Errorf("vm2's guest got %q's metadata", vm2.Name)
	}
}

// TestUserDataByteExact: gzip and MIME multipart user data reach cloud-init
// unchanged through the proxy and the agent (neutron bug 2120723).
func TestUserDataByteExact(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("#cloud-config\nruncmd: [[echo, gzipped]]\n"))
	zw.Close()
	mime := "Content-Type: multipart/mixed; boundary=\"XYZ\"\nMIME-Version: 1.0\n\n--XYZ\nContent-Type: text/cloud-config\n\n#cloud-config\nhostname: m\n--XYZ\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho hi\n--XYZ--\n"
	w := testworld.New(t, testworld.RoutedTopo)
	w.StartServe(testworld.ServeOptions{})
	for name, data := range map[string][]byte{"vm1": gz.Bytes(), "vm2": []byte(mime)} {
		in, err := w.Store.GetInstance(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		in.UserData = data
		if err := w.Store.PutInstance(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	w.LabUp()
	for name, want := range map[string][]byte{"vm1": gz.Bytes(), "vm2": []byte(mime)} {
		ns := w.GuestNS(name)
		waitServing(t, ns)
		c := testworld.RunCrawl(t, ns, "openstack")
		if c.UserdataSHA256 != sha(want) || c.UserdataLen != len(want) {
			t.Errorf("%s: cloud-init read %d bytes (sha %s), want %d bytes (sha %s)", name, c.UserdataLen, c.UserdataSHA256, len(want), sha(want))
		}
	}
}

// TestSameIPTwoProjects: two tenants whose guests share an address behind
// different routers each get their own metadata, and forged identity
// headers change nothing.
func TestSameIPTwoProjects(t *testing.T) {
	w := testworld.New(t, `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: ra, project: alpha}
  - {name: rb, project: beta}
networks:
  - {name: neta, project: alpha, cidr: 10.90.7.0/24, router: ra}
  - {name: netb, project: beta, cidr: 10.90.7.0/24, router: rb}
instances:
  - {name: alpha-vm, project: alpha, network: neta, ip: 10.90.7.10}
  - {name: beta-vm, project: beta, network: netb, ip: 10.90.7.10}
`)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	alpha, beta := w.GuestNS("alpha-vm"), w.GuestNS("beta-vm")
	waitServing(t, alpha)
	waitServing(t, beta)
	if c := testworld.RunCrawl(t, alpha, "openstack"); c.Name != "alpha-vm" {
		t.Errorf("alpha's guest got %q", c.Name)
	}
	if c := testworld.RunCrawl(t, beta, "openstack"); c.Name != "beta-vm" {
		t.Errorf("beta's guest got %q", c.Name)
	}

	victim := w.Instance("alpha-vm")
	rb := w.Router("ra")
	code, body := testworld.Curl(beta, "http://169.254.169.254/openstack/latest/meta_data.json",
		"X-Instance-ID: "+victim.ID, "X-Tenant-ID: "+victim.ProjectID,
		"X-Instance-ID-Signature: 0000", "X-Forwarded-For: 10.90.7.10",
		"X-Neutron-Router-ID: "+rb.ID, "X-Neutron-Network-ID: x", "X-Metadata-Provider: evil")
	if code != 200 || !strings.Contains(body, `"name": "beta-vm"`) || strings.Contains(body, victim.ID) {
		t.Errorf("forged headers: status %d body %.200s; want beta-vm's own metadata", code, body)
	}
}

// TestPartDownFast5xxAndRecovers: with the agent or the API gone a guest
// gets a 5xx at once (no hang), and answers again, with nothing restarted
// but the part, when the part is back. Agent and API run as serves of
// their own, as on separate nodes; the API comes back on its address.
func TestPartDownFast5xxAndRecovers(t *testing.T) {
	for _, part := range []string{server.ComponentAgent, server.ComponentAPI} {
		t.Run(part, func(t *testing.T) {
			w := testworld.New(t, testworld.RoutedTopo)
			apiLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			apiAddr := apiLn.Addr().String()
			// The part runs alone; the rest of the chain in a second serve.
			// The API's serve has a data dir of its own (two serves at once
			// each keep an admin socket); the agent's socket must be in the
			// proxy's.
			down := testworld.ServeOptions{Components: []string{part}}
			rest := testworld.ServeOptions{Components: []string{server.ComponentProxy},
				Overrides: map[string]string{"nova_metadata_port": testworld.Port(apiAddr)}}
			if part == server.ComponentAPI {
				down.Dir, down.APIListener = t.TempDir(), apiLn
				rest.Components = append(rest.Components, server.ComponentAgent)
			} else {
				down.Overrides = rest.Overrides
				rest.Components, rest.APIListener = append(rest.Components, server.ComponentAPI), apiLn
			}
			w.StartServe(rest)
			_, stop := w.StartServe(down)
			w.LabUp()
			ns := w.GuestNS("vm1")
			waitServing(t, ns)

			stop()
			start := time.Now()
			code, body := testworld.Curl(ns, "http://169.254.169.254/openstack/latest/meta_data.json")
			took := time.Since(start)
			t.Logf("%s down: status %d after %v", part, code, took)
			if code < 500 || code > 599 {
				t.Fatalf("%s down: status %d (%s), want a 5xx", part, code, body)
			}
			if took > 10*time.Second {
				t.Errorf("%s down: the 5xx took %v, want it at once", part, took)
			}
			if part == server.ComponentAPI {
				down.APIListener = relisten(t, apiAddr)
			}
			w.StartServe(down)
			readsAs(t, ns, "vm1", "after recovery")
		})
	}
}

// relisten listens on addr again, a port a stopped serve just closed.
func relisten(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	testworld.WaitFor(t, 10*time.Second, "listen on "+addr+" again", func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln
}

// TestRestartKeepsOneRuleSet: a second serve adopts the namespaces and
// rules the first left, and duplicates nothing.
func TestRestartKeepsOneRuleSet(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	_, stop := w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	ns := w.GuestNS("vm1")
	waitServing(t, ns)
	router := w.RouterNS("r1")
	before := ruleDump(t, router)
	stop()
	w.StartServe(testworld.ServeOptions{})
	waitServing(t, ns)
	after := ruleDump(t, router)
	if before != after {
		t.Errorf("rules changed across a restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if n := strings.Count(after, "--to-ports 9697"); n != 1 {
		t.Errorf("%d REDIRECT rules after restart, want 1:\n%s", n, after)
	}
}

// ruleDump is iptables-save of a namespace without counters and comments.
func ruleDump(t *testing.T, ns string) string {
	t.Helper()
	out, stderr, err := testworld.InNS(ns, 10*time.Second, "iptables-save")
	if err != nil {
		t.Fatalf("iptables-save in %s: %v: %s", ns, err, stderr)
	}
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if strings.HasPrefix(l, ":") { // chain policy with counters
			l = l[:strings.LastIndex(l, " ")]
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// TestSecretMismatchPointsAtSecret: an API node (`--components api`) and a
// network node (`--components agent,proxy --set
// metadata_proxy_shared_secret=…`) disagree on the secret. The guest gets
// nova's 403; the API's log names the signature that did not match, the
// agent's says the secrets do not match, and `mdctl trace` fails the api
// hop naming metadata_proxy_shared_secret.
func TestSecretMismatchPointsAtSecret(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	bin := buildMdctl(t)
	var apiLog, nodeLog testlog.Buffer
	w.Log = slog.New(slog.NewTextHandler(&apiLog, nil))
	apiAddr, _ := w.StartServe(testworld.ServeOptions{Dir: t.TempDir(), Components: []string{server.ComponentAPI}})
	w.Set("nova_metadata_port", testworld.Port(apiAddr)) // for the tracer
	w.Log = slog.New(slog.NewTextHandler(&nodeLog, nil))
	w.StartServe(testworld.ServeOptions{Components: []string{server.ComponentAgent, server.ComponentProxy},
		Overrides: map[string]string{"metadata_proxy_shared_secret": "the-network-node-s-own"}})
	w.LabUp()
	ns := w.GuestNS("vm1")
	var body string
	testworld.WaitFor(t, 10*time.Second, "the guest's 403", func() error {
		var code int
		code, body = testworld.Curl(ns, "http://169.254.169.254/openstack/latest/meta_data.json")
		if code != 403 {
			return fmt.Errorf("status %d: %.200s", code, body)
		}
		return nil
	})
	if !strings.Contains(body, "Invalid proxy request signature") {
		t.Errorf("the guest's 403 says %q, want nova's signature message", body)
	}
	for _, l := range []struct {
		node string
		log  *testlog.Buffer
		want string
	}{
		{"API node", &apiLog, "does not match the expected signature"},
		{"network node", &nodeLog, "shared secrets do not match"},
	} {
		if !strings.Contains(l.log.String(), l.want) {
			t.Errorf("the %s's log lacks %q:\n%s", l.node, l.want, tail(l.log.String(), 3000))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--data-dir", w.Dir, "trace", "vm1").CombinedOutput()
	if err == nil {
		t.Errorf("mdctl trace passed with the secrets apart:\n%s", out)
	}
	for _, want := range []string{"secret mismatch", "metadata_proxy_shared_secret"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mdctl trace does not say %q:\n%s", want, out)
		}
	}
	t.Logf("trace:\n%s", out)
	assertHintIDLogged(t, ctx, bin, w.Dir, map[string]*testlog.Buffer{"API node": &apiLog, "network node": &nodeLog})
}

// assertHintIDLogged runs trace --json and checks that the request id
// the failing hop's hint gives journalctl -g is in each serve's log: the
// operator who runs the hint finds the refusal.
func assertHintIDLogged(t *testing.T, ctx context.Context, bin, dir string, logs map[string]*testlog.Buffer) {
	t.Helper()
	out, _ := exec.CommandContext(ctx, bin, "--data-dir", dir, "trace", "vm1", "--json").Output()
	var r struct {
		FailedHop string `json:"failed_hop"`
		Hops      []struct {
			Name string `json:"name"`
			Hint string `json:"hint"`
		} `json:"hops"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("trace --json: %v\n%s", err, out)
	}
	for _, h := range r.Hops {
		if h.Name != r.FailedHop {
			continue
		}
		_, after, ok := strings.Cut(h.Hint, "journalctl -u mdctl -g ")
		id, _, _ := strings.Cut(after, " ")
		if !ok || id == "" {
			t.Fatalf("%s hop's hint names no request id for journalctl: %q", h.Name, h.Hint)
		}
		for node, l := range logs {
			if !strings.Contains(l.String(), "request_id="+id) {
				t.Errorf("the %s's log has no line with request_id=%s (the hint's):\n%s", node, id, tail(l.String(), 3000))
			}
		}
		return
	}
	t.Fatalf("trace failed no hop:\n%s", out)
}
