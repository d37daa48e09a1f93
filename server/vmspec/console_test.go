package vmspec

import (
	"strings"
	"testing"
)

// A console of a VM whose metadata route is broken, then one that works:
// cloud-init 22.4's own lines, with the kernel's and systemd's around them.
const brokenConsole = `[    0.000000] Linux version 6.1.0-28-amd64
[    3.101] cloud-init[201]: Cloud-init v. 22.4.2 running 'init-local' at Thu, 03 Dec 2026 10:00:01 +0000. Up 3.05 seconds.
[    5.2] cloud-init[301]: Cloud-init v. 22.4.2 running 'init' at Thu, 03 Dec 2026 10:00:03 +0000. Up 5.10 seconds.
[    6.0] cloud-init[301]: 2026-12-03 10:00:04,000 - url_helper.py[WARNING]: Calling 'http://169.254.169.254/openstack' failed [0/120s]: request error [timed out]
[    9.0] cloud-init[301]: 2026-12-03 10:00:07,000 - url_helper.py[WARNING]: Calling 'http://169.254.169.254/openstack' failed [3/120s]: request error [timed out]
[   12.0] cloud-init[301]: 2026-12-03 10:00:10,000 - url_helper.py[WARNING]: Calling 'http://169.254.169.254/openstack' failed [6/120s]: request error [timed out]
[   15.0] cloud-init[301]: 2026-12-03 10:00:13,000 - url_helper.py[WARNING]: Calling 'http://169.254.169.254/openstack' failed [9/120s]: request error [timed out]
[  125.0] cloud-init[301]: 2026-12-03 10:02:03,000 - DataSourceOpenStack.py[WARNING]: No active metadata service found
[  130.0] cloud-init[555]: Cloud-init v. 22.4.2 finished at Thu, 03 Dec 2026 10:02:08 +0000. Datasource DataSourceNone.  Up 130.00 seconds
`

func TestParseConsole(t *testing.T) {
	c := ParseConsole(brokenConsole)
	if !c.NoMetadata() || !c.Finished || c.Datasource != "DataSourceNone" || len(c.Failures) != maxFailures ||
		!strings.Contains(c.Failures[maxFailures-1], "[9/120s]") || !strings.Contains(c.GaveUp, "No active metadata service found") {
		t.Errorf("broken console: %+v", c)
	}
	if len(c.Stages) != 2 || c.Stages[0] != "init-local" || len(c.Lines) != 8 {
		t.Errorf("stages %q, %d lines: %q", c.Stages, len(c.Lines), c.Lines)
	}
	// The next boot works: its lines replace the last boot's.
	ok := ParseConsole(brokenConsole + `[    3.0] cloud-init[201]: Cloud-init v. 22.4.2 running 'init-local' at Thu, 03 Dec 2026 10:05:01 +0000. Up 3.00 seconds.
[    9.0] cloud-init[777]: Cloud-init v. 22.4.2 finished at Thu, 03 Dec 2026 10:05:10 +0000. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 9.00 seconds
`)
	if ok.NoMetadata() || ok.Datasource != "DataSourceOpenStackLocal [net,ver=2]" || len(ok.Failures) != 0 || len(ok.Stages) != 1 {
		t.Errorf("second boot: %+v", ok)
	}
	if empty := ParseConsole(""); empty.NoMetadata() || empty.Finished || len(empty.Lines) != 0 {
		t.Errorf("empty console: %+v", empty)
	}
}

// Cloud-init's status words from the console, as lab status shows them.
func TestConsoleStatus(t *testing.T) {
	const (
		banner = "[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org)\n"
		local  = "[   54.2] cloud-init[236]: Cloud-init v. 22.4.2 running 'init-local' at Fri, 04 Dec 2026 01:36:45 +0000. Up 53.68 seconds.\r\n"
		initS  = "[   69.4] cloud-init[296]: Cloud-init v. 22.4.2 running 'init' at Fri, 04 Dec 2026 01:37:00 +0000. Up 68.93 seconds.\n"
		config = "[   89.6] cloud-init[343]: Cloud-init v. 22.4.2 running 'modules:config' at Fri, 04 Dec 2026 01:37:20 +0000. Up 89.33 seconds.\n"
		final  = "[   98.7] cloud-init[377]: Cloud-init v. 22.4.2 running 'modules:final' at Fri, 04 Dec 2026 01:37:29 +0000. Up 98.19 seconds.\n"
		done   = "[  101.0] cloud-init[377]: Cloud-init v. 22.4.2 finished at Fri, 04 Dec 2026 01:37:32 +0000. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 100.96 seconds\n"
		warn   = "[   90.7] cloud-init[343]: 2026-12-04 01:37:22,231 - util.py[WARNING]: Running module locale failed\n"
		errL   = "[   70.1] cloud-init[296]: 2026-12-04 01:37:01,000 - url_helper.py[ERROR]: boom\n"
		failed = "\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mcloud-final.service\x1b[0m - Execute cloud user/final scripts.\n"
		hangup = "\x1b[H\x1b[2J\x1b[3J\n\nDebian GNU/Linux 12 localhost ttyS0\n\nlocalhost login: "
	)
	cases := []struct {
		name, console, status string
		stages, errs, warns   int
		ds                    string
		kernel                bool
	}{
		{"empty", "", StatusNotRun, 0, 0, 0, "", false},
		{"kernel only", banner, StatusNotRun, 0, 0, 0, "", true},
		{"running", banner + local + initS, StatusRunning, 2, 0, 0, "", true},
		{"done with a warning, across getty's hang-up", banner + local + initS + hangup + config + warn + final + done + hangup, StatusDone, 4, 0, 1, "DataSourceOpenStackLocal [net,ver=2]", true},
		{"error logged", local + initS + errL + config + final + done, StatusError, 4, 1, 0, "DataSourceOpenStackLocal [net,ver=2]", false},
		{"error logged, still running", local + initS + errL, StatusRunning, 2, 1, 0, "", false},
		{"kernel panic", banner + "[    0.084000] ---[ end Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug ]---\n", StatusError, 0, 1, 0, "", true},
		{"unit failed", local + initS + config + final + "[" + failed, StatusError, 4, 1, 0, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ParseConsole(c.console)
			if p.Status() != c.status || len(p.Stages) != c.stages || len(p.Errors) != c.errs || len(p.Warnings) != c.warns || p.Datasource != c.ds || p.Kernel != c.kernel {
				t.Errorf("got %+v (status %s); want status %s, %d stages, %d errors, %d warnings, datasource %q, kernel %v",
					p, p.Status(), c.status, c.stages, c.errs, c.warns, c.ds, c.kernel)
			}
		})
	}
}
