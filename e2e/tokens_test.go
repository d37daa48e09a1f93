package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/mdctl/mdctl/internal/judge"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
)

const (
	tokenURL = "http://" + dataplane.MetadataIPv4 + "/latest/api/token"
	idURL    = "http://" + dataplane.MetadataIPv4 + "/latest/meta-data/instance-id"
)

// curlIn runs curl in ns and returns the status and body (status 0: no
// HTTP answer within 3 s).
func curlIn(ns string, args ...string) (int, string) {
	argv := append([]string{"curl", "-s", "-m", "3", "-o", "-", "-w", "\n%{http_code}"}, args...)
	out, _, _ := testworld.InNS(ns, 10*time.Second, argv...)
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return 0, out
	}
	var code int
	fmt.Sscan(out[i+1:], &code)
	return code, out[:i]
}

func putToken(ns string, extra ...string) (int, string) {
	return curlIn(ns, append([]string{"-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 300"}, append(extra, tokenURL)...)...)
}

// TestSessionTokensThroughChain: with metadata_tokens=required, through
// route → REDIRECT → proxy → agent → API: a tokenless curl gets 401; a
// token from PUT /latest/api/token serves its own guest and no other; a
// PUT with X-Forwarded-For is refused; AWS's Go IMDS client (without its
// IMDSv1 fallback) reads the instance id; and a container NATed behind
// the guest cannot get a token at the default hop limit 1, only at 2.
func TestSessionTokensThroughChain(t *testing.T) {
	w := testworld.New(t, testworld.RoutedTopo)
	w.Set("metadata_tokens", "required")
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	ns1, ns2 := w.GuestNS("vm1"), w.GuestNS("vm2")
	var tok string
	testworld.WaitFor(t, 15*time.Second, "a token through the chain", func() error {
		code, body := putToken(ns1)
		if code != 200 {
			return fmt.Errorf("PUT: %d %s", code, body)
		}
		tok = body
		return nil
	})
	vm1 := w.Instance("vm1")
	wantID := fmt.Sprintf("i-%08x", vm1.EC2ID)

	if code, _ := curlIn(ns1, idURL); code != 401 {
		t.Errorf("tokenless GET with tokens required: %d, want 401", code)
	}
	if code, body := curlIn(ns1, "-H", "X-aws-ec2-metadata-token: "+tok, idURL); code != 200 || body != wantID {
		t.Errorf("GET with vm1's token: %d %q, want %s", code, body, wantID)
	}
	if code, _ := curlIn(ns2, "-H", "X-aws-ec2-metadata-token: "+tok, idURL); code != 401 {
		t.Errorf("vm1's token used in vm2: %d, want 401", code)
	}
	if code, _ := putToken(ns1, "-H", "X-Forwarded-For: 10.90.1.6"); code != 403 {
		t.Errorf("token PUT with X-Forwarded-For: %d, want 403", code)
	}

	t.Run("aws-sdk-go-v2 imds", func(t *testing.T) {
		c := imds.New(imds.Options{EnableFallback: aws.FalseTernary, HTTPClient: nsHTTPClient(ns1)})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
		if err != nil {
			t.Fatalf("GetMetadata: %v", err)
		}
		defer out.Content.Close()
		b, _ := io.ReadAll(out.Content)
		if string(b) != wantID {
			t.Errorf("the SDK read %q, want %s", b, wantID)
		}
	})

	t.Run("cloud-init EC2 datasource", func(t *testing.T) {
		got := ec2Datasource(t, ns1, "aws")
		if !strings.Contains(got, `"instance-id": "`+wantID+`"`) || !strings.Contains(got, `"token": true`) {
			t.Errorf("cloud-init's EC2 datasource as on AWS: %s", got)
		}
		// Off AWS (an OpenStack guest) cloud-init 22.4 asks without a
		// token: required refuses it, as README says.
		if got := ec2Datasource(t, ns1, "openstack"); !strings.Contains(got, `"crawled": false`) {
			t.Errorf("cloud-init's EC2 datasource off AWS got metadata with tokens required: %s", got)
		}
	})

	t.Run("hop limit", func(t *testing.T) {
		container := natBehind(t, ns1)
		if code, _ := curlIn(container, idURL); code != 401 {
			t.Fatalf("the container reaches metadata through the guest's NAT: got %d, want 401 (no token)", code)
		}
		if code, body := putToken(container); code != 0 {
			t.Errorf("token PUT from behind the guest's NAT at hop limit 1: %d %q, want no answer", code, body)
		}
		w.Set("metadata_token_hop_limit", "2")
		testworld.WaitFor(t, 10*time.Second, "a token behind NAT at hop limit 2", func() error {
			if code, body := putToken(container); code != 200 {
				return fmt.Errorf("PUT: %d %q", code, body)
			}
			return nil
		})
	})
}

// ec2DatasourcePy runs cloud-init's DataSourceEc2 crawl (token fetch,
// then the tree with the token in every request, exactly its own code) as
// on platform argv[1]: cloud-init fetches IMDSv2 tokens only when it has
// identified the platform as AWS (from DMI, which a lab guest lacks, so
// the test names it).
const ec2DatasourcePy = `import json, sys, tempfile
from cloudinit import helpers, distros
from cloudinit.sources import DataSourceEc2 as ec2
work = tempfile.mkdtemp()
paths = helpers.Paths({"cloud_dir": work + "/cloud", "run_dir": work + "/run"})
cfg = {"datasource": {"Ec2": {"timeout": 2, "max_wait": 3, "metadata_urls": ["http://169.254.169.254"]}}}
ds = ec2.DataSourceEc2(cfg, distros.fetch("debian")("debian", {}, paths), paths)
ds._cloud_name = ec2.CloudNames.AWS if sys.argv[1] == "aws" else ec2.CloudNames.UNKNOWN
md = ds.crawl_metadata()
print(json.dumps({"crawled": bool(md), "token": bool(getattr(ds, "_api_token", None)),
                  "instance-id": (md.get("meta-data") or {}).get("instance-id")}))
`

// ec2Datasource runs ec2DatasourcePy in ns with the default judge's
// cloud-init and returns its JSON line.
func ec2Datasource(t *testing.T, ns, platform string) string {
	t.Helper()
	repo := testworld.ModuleRoot(t)
	root, err := judge.Root(context.Background(), repo, "")
	if err != nil {
		t.Skipf("cloud-init's reader: %v", err)
	}
	out, stderr, err := testworld.InNS(ns, 60*time.Second, "env", "PYTHONPATH="+filepath.Join(root, judge.Packages),
		"/usr/bin/python3", "-c", ec2DatasourcePy, platform) // Debian's, with cloud-init's dependencies, as the crawl tool
	if err != nil {
		t.Fatalf("cloud-init's EC2 datasource in %s: %v\n%s", ns, err, stderr)
	}
	return strings.TrimSpace(out)
}

// nsHTTPClient is an HTTP client whose connections are made inside ns: a
// socket stays in the namespace it was made in, whatever thread uses it.
func nsHTTPClient(ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := dataplane.Do(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial, Proxy: nil}}
}

// natBehind makes a namespace behind guest ns, as a container on the
// guest: its own veth to the guest, the guest forwarding and masquerading
// it out of its NIC. It is removed when the test ends.
func natBehind(t *testing.T, guest string) string {
	t.Helper()
	sfx := testworld.Suffix()
	c, outer, inner := "mdtc-"+sfx, "vco"+sfx, "vci"+sfx
	run := func(argv ...string) {
		t.Helper()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	run("ip", "netns", "add", c)
	t.Cleanup(func() {
		// The guest's end first, at once: a namespace's devices go
		// asynchronously, and the lab's teardown lists the guest's links.
		exec.Command("ip", "netns", "exec", guest, "ip", "link", "del", outer).Run()
		exec.Command("ip", "netns", "del", c).Run()
	})
	run("ip", "link", "add", outer, "netns", guest, "type", "veth", "peer", "name", inner, "netns", c)
	g := func(argv ...string) []string { return append([]string{"ip", "netns", "exec", guest}, argv...) }
	n := func(argv ...string) []string { return append([]string{"ip", "netns", "exec", c}, argv...) }
	run(g("ip", "addr", "add", "10.90.250.1/30", "dev", outer)...)
	run(g("ip", "link", "set", outer, "up")...)
	run(g("sysctl", "-qw", "net.ipv4.ip_forward=1")...)
	run(g("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.90.250.0/30", "-o", dataplane.GuestInterface, "-j", "MASQUERADE")...)
	run(n("ip", "link", "set", "lo", "up")...)
	run(n("ip", "addr", "add", "10.90.250.2/30", "dev", inner)...)
	run(n("ip", "link", "set", inner, "up")...)
	run(n("ip", "route", "add", "default", "via", "10.90.250.1")...)
	return c
}
