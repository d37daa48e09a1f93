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
