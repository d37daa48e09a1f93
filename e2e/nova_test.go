package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
)

// novaTopo has a two-port instance, so its EC2 security-groups shows one
// line per port binding, and meta whose keys are not in sorted order.
const novaTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - {name: r1, project: demo}
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24, router: r1}
  - {name: net2, project: demo, cidr: 10.90.2.0/24, router: r1}
instances:
  - name: vm1
    project: demo
    security_groups: [default, web]
    ports:
      - {network: net1, ip: 10.90.1.5}
      - {network: net2, ip: 10.90.2.5, security_groups: [default]}
    meta:
      zeta: last-alphabetically
      alpha: first-alphabetically
`

// guestCurl runs curl in the guest's namespace with extra arguments and
// returns the status and body.
func guestCurl(t *testing.T, ns string, args ...string) (int, string) {
	t.Helper()
	argv := append([]string{"curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"}, args...)
	out, _, _ := testworld.InNS(ns, 10*time.Second, argv...)
	i := strings.LastIndex(out, "\n")
	if i < 0 {
		return 0, out
	}
	code, _ := strconv.Atoi(strings.TrimSpace(out[i+1:]))
	return code, out[:i]
}

// TestNovaQuirksThroughChain: what a guest reads through route → proxy →
// agent → API is what nova's deployed pipeline gives (each fact's source
// is in server/api/testdata/pipeline.golden and the metadata goldens).
func TestNovaQuirksThroughChain(t *testing.T) {
	w := testworld.New(t, novaTopo)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	ns := w.GuestNS("vm1")
	waitServing(t, ns)
	const md = "http://169.254.169.254"

	cases := []struct {
		name   string
		args   []string
		status int
		body   string // "" : only the status is checked
		has    string // a substring the body must hold
	}{
		{name: "repeated slashes fold (paste urlmap): the meta-data listing, not the version list",
			args: []string{"--path-as-is", md + "//latest/meta-data/"}, status: 200, has: "security-groups"},
		{name: "one line per port binding (security_group_api.get_instances_security_groups_bindings)",
			args: []string{md + "/latest/meta-data/security-groups"}, status: 200, body: "default\nweb\ndefault"},
		{name: "meta in row order, not sorted (base.py _metadata_as_json)",
			args: []string{md + "/openstack/latest/meta_data.json"}, status: 200,
			has: `"meta": {"zeta": "last-alphabetically", "alpha": "first-alphabetically"}`},
		{name: "oslo healthcheck before the handler",
			args: []string{md + "/healthcheck"}, status: 200, body: "OK"},
		{name: "a child of a leaf is a 500 (find_path_in_tree TypeError)",
			args: []string{md + "/latest/meta-data/hostname/x"}, status: 500},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := guestCurl(t, ns, tc.args...)
			if code != tc.status || (tc.body != "" && body != tc.body) || !strings.Contains(body, tc.has) {
				t.Errorf("got %d %q; want %d %q (holding %q)", code, body, tc.status, tc.body, tc.has)
			}
		})
	}
}
