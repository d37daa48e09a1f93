package testimage

import (
	"os"
	"strings"
	"testing"
)

// A real report: the test image booted under TCG by the VM storm, its
// mdctl-report unit's output on ttyS1 (cloud-init 22.4.2, OpenStack
// through the router).
func TestParseRealReport(t *testing.T) {
	b, err := os.ReadFile("testdata/report-openstack.log")
	if err != nil {
		t.Fatal(err)
	}
	if !Complete(b) || Complete(b[:len(b)/2]) {
		t.Fatal("Complete: want true for the whole report, false for half")
	}
	r, err := ParseReport(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "done" || r.StatusRC != "0" || len(r.Errors) != 0 || !strings.HasPrefix(r.Datasource, "DataSourceOpenStackLocal") {
		t.Errorf("status %q rc %q errors %q datasource %q", r.Status, r.StatusRC, r.Errors, r.Datasource)
	}
	for _, s := range []string{"init-local", "init", "modules-config", "modules-final"} {
		if st, ok := r.Stages[s]; !ok || !st.Ran() || len(st.Errors) != 0 {
			t.Errorf("stage %s: %+v", s, st)
		}
	}
	if !strings.HasPrefix(r.Hostname, "storm") || !strings.HasPrefix(r.Runcmd, "mdctl-runcmd-storm") || !strings.Contains(r.AuthorizedKeys, "ssh-ed25519 ") {
		t.Errorf("hostname %q runcmd %q keys %q", r.Hostname, r.Runcmd, r.AuthorizedKeys)
	}
	tm, err := OpenStackTiming(r.CloudInitLog)
	if err != nil {
		t.Fatal(err)
	}
	// cloud-init 22.4's read_v2 of mdctl's tree; the DHCP inside the search.
	if tm.Reads < 20 || tm.DHCP <= 0 || tm.Metadata <= 0 || tm.Search < tm.Metadata+tm.DHCP {
		t.Errorf("timing %+v", tm)
	}
	t.Logf("timing: %+v", tm)
}

func TestParseReportRefusesHalfAReport(t *testing.T) {
	if _, err := ParseReport([]byte("noise\n=== mdctl-report begin\n--- status\nstatus: done\n")); err == nil {
		t.Error("an unfinished report parsed")
	}
	if _, err := ParseReport([]byte("no report here")); err == nil {
		t.Error("no report parsed")
	}
	if _, err := OpenStackTiming("2026-12-04 01:00:00,000 - util.py[DEBUG]: nothing\n"); err == nil {
		t.Error("a log without the OpenStack search timed")
	}
}
