package diag

import "testing"

// TestHintsNameTheShippedUnit: the hints that send an operator to serve's
// log or service name the unit mdctl ships (cmd/mdctl's TestSystemdUnit
// installs dist/systemd/<ServiceUnit>.service) and the request ids as
// journalctl -g takes them.
func TestHintsNameTheShippedUnit(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{logHint("trace-0a1b2c3d4e5f"), "journalctl -u mdctl -g trace-0a1b2c3d4e5f (a serve run by hand: its stderr)"},
		{logHint("trace-1", "trace-2", "trace-3"), "journalctl -u mdctl -g 'trace-1|trace-2|trace-3' (a serve run by hand: its stderr)"},
		{startHint("agent"), "start the agent: mdctl serve (its components must include agent); under systemd: systemctl status mdctl (why it stopped), then systemctl restart mdctl"},
		{restartHint(), "systemctl restart mdctl"},
	} {
		if tc.got != tc.want {
			t.Errorf("hint\n got %q\nwant %q", tc.got, tc.want)
		}
	}
}
