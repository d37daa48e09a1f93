package agent

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzIdentify: whatever headers reach the agent's socket (the proxy's,
// and what a guest smuggled past it), identify gives exactly one scope
// and a valid source, or a message for a 400; never both, never a panic.
func FuzzIdentify(f *testing.F) {
	for _, s := range [][3]string{
		{"r1", "", "10.90.1.5"},
		{"", "n1", "fe80::1"},
		{"r1", "n1", "10.0.0.1"},
		{"", "", ""},
		{"r1", "", "10.0.0.1\n10.0.0.2"},
		{"r\x00", "", "::ffff:10.0.0.1"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, router, network, xff string) {
		r, err := http.NewRequest(http.MethodGet, "http://agent/", nil)
		if err != nil {
			t.Fatal(err)
		}
		set := func(k, v string) {
			if v != "" {
				// Several lines of one header, as a client may send them.
				for _, line := range strings.Split(v, "\n") {
					r.Header.Add(k, line)
				}
			}
		}
		set(hdrRouterID, router)
		set(hdrNetworkID, network)
		set(hdrXFF, xff)
		sc, src, msg := identify(r)
		if msg != "" {
			if src.IP.IsValid() {
				t.Fatalf("refused (%q) but gave a source %v", msg, src.IP)
			}
			return
		}
		if sc.ID == "" || (sc.Kind != "router" && sc.Kind != "network") {
			t.Fatalf("accepted with scope %+v", sc)
		}
		if !src.IP.IsValid() || src.IP.Is4In6() {
			t.Fatalf("accepted with source %v", src.IP)
		}
		if r.Header.Get(hdrRouterID) != "" && r.Header.Get(hdrNetworkID) != "" {
			t.Fatalf("accepted both a router %q and a network %q", router, network)
		}
	})
}
