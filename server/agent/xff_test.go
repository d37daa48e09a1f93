package agent

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseXFF(t *testing.T) {
	tests := []struct {
		in, ip, mac string
		ok          bool
	}{
		{"10.90.1.5", "10.90.1.5", "", true},
		{"::ffff:10.90.1.5", "10.90.1.5", "", true},
		{"fd00:90::20", "fd00:90::20", "", true},
		{"fe80::f816:3eff:fe12:3456", "fe80::f816:3eff:fe12:3456", "fa:16:3e:12:34:56", true},
		{"", "", "", false},
		{"10.90.1.5, 10.90.1.6", "", "", false},
		{"10.90.1.5,10.90.1.6", "", "", false},
		{" 10.90.1.5", "", "", false},
		{"10.90.1.5:80", "", "", false},
		{"[fd00::1]", "", "", false},
		{"fe80::1%eth0", "", "", false},
		{"010.090.001.005", "", "", false},
		{"unknown", "", "", false},
	}
	for _, tc := range tests {
		s, err := parseXFF(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("parseXFF(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (s.IP.String() != tc.ip || s.MAC != tc.mac) {
			t.Errorf("parseXFF(%q) = %s %q, want %s %q", tc.in, s.IP, s.MAC, tc.ip, tc.mac)
		}
	}
}

func FuzzXFF(f *testing.F) {
	for _, s := range []string{"10.90.1.5", "::ffff:10.0.0.1", "fe80::1", "a, b", "1.2.3.4, 5.6.7.8", "", "fe80::1%x", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := parseXFF(v)
		if err != nil {
			return
		}
		if strings.ContainsAny(v, ", ") {
			t.Fatalf("accepted a list or padded value %q", v)
		}
		if !s.IP.IsValid() || s.IP.Is4In6() || s.IP.Zone() != "" {
			t.Fatalf("parseXFF(%q) = %v", v, s.IP)
		}
		want, err := netip.ParseAddr(v)
		if err != nil || want.Unmap() != s.IP {
			t.Fatalf("parseXFF(%q) = %v, netip says %v %v", v, s.IP, want, err)
		}
		if (s.MAC != "") != (s.IP.Is6() && s.IP.IsLinkLocalUnicast()) {
			t.Fatalf("parseXFF(%q): MAC %q for %v", v, s.MAC, s.IP)
		}
	})
}
