package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server"
)

const routedTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - name: r1
    project: demo
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24
    router: r1
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5
    user_data: |
      #cloud-config
      hostname: vm1
    public_keys: {default: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyForMdctl000000000000000000000000 demo"}
    meta: {role: web}
  - name: vm2
    project: demo
    network: net1
    ip: 10.90.1.6
`

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// waitServing waits until a guest gets an answer through the whole chain.
func waitServing(t *testing.T, ns string) {
	t.Helper()
	waitFor(t, 10*time.Second, "metadata through the chain", func() error {
		code, body := curl(t, ns, "http://169.254.169.254/openstack")
		if code != 200 {
			return fmt.Errorf("status %d: %s", code, body)
		}
		return nil
	})
}

// TestCloudInitThroughRouter: cloud-init's OpenStack and EC2 readers in a
// lab guest cross route → qrouter namespace → REDIRECT → proxy → socket →
// agent → API and get that instance's own data.
func TestCloudInitThroughRouter(t *testing.T) {
	w := newWorld(t, routedTopo)
	w.startServe(server.AllComponents, nil)
	guests := w.labUp()
	ns1 := w.guestNS("vm1", guests)
	waitServing(t, ns1)

	vm1, err := w.st.GetInstance(t.Context(), "vm1")
	if err != nil {
		t.Fatal(err)
	}
	os := runCrawl(t, ns1, "openstack")
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
	ec2 := runCrawl(t, ns1, "ec2")
	if ec2.InstanceID != fmt.Sprintf("i-%08x", vm1.EC2ID) || ec2.Hostname != "vm1.novalocal" {
		t.Errorf("ec2 reader got instance-id=%s hostname=%s", ec2.InstanceID, ec2.Hostname)
	}
	if ec2.UserdataSHA256 != sha(vm1.UserData) {
		t.Errorf("ec2 user data differs: %d bytes", ec2.UserdataLen)
	}

	// The second guest on the same router is told apart by its address.
	vm2 := runCrawl(t, w.guestNS("vm2", guests), "openstack")
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
	w := newWorld(t, routedTopo)
	w.startServe(server.AllComponents, nil)
	for name, data := range map[string][]byte{"vm1": gz.Bytes(), "vm2": []byte(mime)} {
		in, err := w.st.GetInstance(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		in.UserData = data
		if err := w.st.PutInstance(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	guests := w.labUp()
	for name, want := range map[string][]byte{"vm1": gz.Bytes(), "vm2": []byte(mime)} {
		ns := w.guestNS(name, guests)
		waitServing(t, ns)
		c := runCrawl(t, ns, "openstack")
		if c.UserdataSHA256 != sha(want) || c.UserdataLen != len(want) {
			t.Errorf("%s: cloud-init read %d bytes (sha %s), want %d bytes (sha %s)", name, c.UserdataLen, c.UserdataSHA256, len(want), sha(want))
		}
	}
}

// TestSameIPTwoProjects: two tenants whose guests share an address behind
// different routers each get their own metadata, and forged identity
// headers change nothing.
func TestSameIPTwoProjects(t *testing.T) {
	w := newWorld(t, `
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
	w.startServe(server.AllComponents, nil)
	guests := w.labUp()
	alpha, beta := w.guestNS("alpha-vm", guests), w.guestNS("beta-vm", guests)
	waitServing(t, alpha)
	waitServing(t, beta)
	if c := runCrawl(t, alpha, "openstack"); c.Name != "alpha-vm" {
		t.Errorf("alpha's guest got %q", c.Name)
	}
	if c := runCrawl(t, beta, "openstack"); c.Name != "beta-vm" {
		t.Errorf("beta's guest got %q", c.Name)
	}

	victim, err := w.st.GetInstance(t.Context(), "alpha-vm")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := w.st.GetRouter(t.Context(), "ra")
	if err != nil {
		t.Fatal(err)
	}
	code, body := curl(t, beta, "http://169.254.169.254/openstack/latest/meta_data.json",
		"X-Instance-ID: "+victim.ID, "X-Tenant-ID: "+victim.ProjectID,
		"X-Instance-ID-Signature: 0000", "X-Forwarded-For: 10.90.7.10",
		"X-Neutron-Router-ID: "+rb.ID, "X-Neutron-Network-ID: x", "X-Metadata-Provider: evil")
	if code != 200 || !strings.Contains(body, `"name": "beta-vm"`) || strings.Contains(body, victim.ID) {
		t.Errorf("forged headers: status %d body %.200s; want beta-vm's own metadata", code, body)
	}
}

// TestAgentDownFast5xxAndRecovers: with the agent gone a guest gets a 5xx
// at once (no hang), and answers again when the agent is back. The agent
// runs as its own serve, as on a separate node.
func TestAgentDownFast5xxAndRecovers(t *testing.T) {
	w := newWorld(t, routedTopo)
	apiAddr, _ := w.startServe([]string{server.ComponentAPI, server.ComponentProxy}, nil)
	port := apiAddr[strings.LastIndex(apiAddr, ":")+1:]
	agentSet := map[string]string{"nova_metadata_port": port}
	_, stopAgent := w.startServe([]string{server.ComponentAgent}, agentSet)
	guests := w.labUp()
	ns := w.guestNS("vm1", guests)
	waitServing(t, ns)

	stopAgent()
	start := time.Now()
	code, body := curl(t, ns, "http://169.254.169.254/openstack/latest/meta_data.json")
	took := time.Since(start)
	t.Logf("agent down: status %d after %v", code, took)
	if code < 500 || code > 599 {
		t.Fatalf("agent down: status %d (%s), want a 5xx", code, body)
	}
	w.startServe([]string{server.ComponentAgent}, agentSet)
	waitServing(t, ns)
	if c := runCrawl(t, ns, "openstack"); c.Name != "vm1" {
		t.Errorf("after recovery got %q", c.Name)
	}
}

// TestRestartKeepsOneRuleSet: a second serve adopts the namespaces and
// rules the first left, and duplicates nothing.
func TestRestartKeepsOneRuleSet(t *testing.T) {
	w := newWorld(t, routedTopo)
	_, stop := w.startServe(server.AllComponents, nil)
	guests := w.labUp()
	ns := w.guestNS("vm1", guests)
	waitServing(t, ns)
	r1, err := w.st.GetRouter(t.Context(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	before := ruleDump(t, "qrouter-"+r1.ID)
	stop()
	w.startServe(server.AllComponents, nil)
	waitServing(t, ns)
	after := ruleDump(t, "qrouter-"+r1.ID)
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
	out, err := exec.Command("ip", "netns", "exec", ns, "iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save in %s: %v", ns, err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
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
