package proxy

import (
	"strings"
	"testing"
)

func TestIsIdentity(t *testing.T) {
	tests := map[string]bool{
		"X-Forwarded-For": true, "x_forwarded_for": true, "X-INSTANCE-ID": true,
		"X-Instance-ID-Signature": true, "x-tenant-id": true, "X-Request-Id": true,
		"X-Neutron-Router-ID": true, "X-Neutron-": true, "x_neutron_network_id": true,
		"X-Metadata-Provider": true, "X-Metadata-Provider-Signature": true, "X-OVN-Network-ID": true,
		"Forwarded": true, "X-Real-IP": true,
		"X-Neutron-" + strings.Repeat("a", 100): true,
		"Host":                                  false, "User-Agent": false, "X-Forwarded-Host": false, "X-Instance": false,
		"X-Neutron": false, "Accept": false, strings.Repeat("b", 64): false,
		"X-Forwarded-For" + strings.Repeat(" ", 60): false, // not a valid name; never parsed
	}
	for name, want := range tests {
		if got := isIdentity(name); got != want {
			t.Errorf("isIdentity(%q) = %v, want %v", name, got, want)
		}
	}
}
