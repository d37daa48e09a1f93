package diag

import (
	"fmt"
	"strings"
)

// ServiceUnit is the systemd unit mdctl ships (dist/systemd/mdctl.service):
// hints name it for a serve that systemd runs.
const ServiceUnit = "mdctl"

// startHint brings back a serve component that does not answer: by hand,
// or under systemd, whose status says why it stopped.
func startHint(component string) string {
	return fmt.Sprintf("start the %s: mdctl serve (its components must include %s); under systemd: systemctl status %s (why it stopped), then systemctl restart %s",
		component, component, ServiceUnit, ServiceUnit)
}

// restartHint is the restart of a running serve under systemd.
func restartHint() string { return "systemctl restart " + ServiceUnit }

// logHint is where serve logged the requests with these ids (each hop
// logs a request's id, the one trace sent in X-Request-ID or the proxy's
// own): the unit's journal, searched for them, or the stderr of a serve
// run by hand.
func logHint(ids ...string) string {
	pattern := strings.Join(ids, "|")
	if len(ids) > 1 {
		pattern = "'" + pattern + "'"
	}
	return fmt.Sprintf("journalctl -u %s -g %s (a serve run by hand: its stderr)", ServiceUnit, pattern)
}
