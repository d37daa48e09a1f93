package diag

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

func TestRuleMatches(t *testing.T) {
	p := packet{src: net.ParseIP("10.90.1.5"), dst: net.ParseIP("169.254.169.254"), proto: "tcp", dport: 80, in: "qr-abcdef12345", mark: 1}
	tests := []struct {
		line        string
		match, sure bool
	}{
		{"-A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j ACCEPT", true, true},
		{"-A PREROUTING -d 169.254.0.0/16 -j ACCEPT", true, true},
		{"-A PREROUTING -d 10.0.0.0/8 -j ACCEPT", false, true},
		{"-A PREROUTING ! -d 169.254.169.254/32 -j ACCEPT", false, true},
		{"-A PREROUTING -i qr-+ -p tcp --dport 80 -j ACCEPT", true, true},
		{"-A PREROUTING -i eth0 -j ACCEPT", false, true},
		{"-A PREROUTING -p udp -j ACCEPT", false, true},
		{"-A PREROUTING -p tcp -m tcp --dport 443 -j ACCEPT", false, true},
		{"-A PREROUTING -p tcp -m tcp --dport 1:1024 -j ACCEPT", true, true},
		{"-A PREROUTING -p tcp -m multiport --dports 22,80,443 -j ACCEPT", true, true},
		{"-A PREROUTING -s 10.90.1.0/24 -j ACCEPT", true, true},
		{"-A PREROUTING -s 10.90.2.0/24 -j ACCEPT", false, true},
		{"-A PREROUTING -m mark --mark 0x1/0xffff -j ACCEPT", true, true},
		{"-A PREROUTING -m mark --mark 0x2/0xffff -j ACCEPT", false, true},
		{`-A PREROUTING -m comment --comment "keep it \"safe\"" -d 169.254.169.254/32 -j ACCEPT`, true, true},
		{"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER", true, false},
	}
	for _, tt := range tests {
		m, sure := parseRule(tt.line).matches(p)
		if m != tt.match || (m && sure != tt.sure) {
			t.Errorf("%s: match=%v sure=%v, want %v %v", tt.line, m, sure, tt.match, tt.sure)
		}
	}
}

func TestFindShadow(t *testing.T) {
	p := packet{src: net.ParseIP("10.90.1.5"), dst: net.ParseIP("169.254.169.254"), proto: "tcp", dport: 80, in: "qr-abcdef12345", mark: 1}
	jump := "-A PREROUTING -j neutron-l3-agent-PREROUTING"
	tests := []struct {
		name   string
		chains map[string][]string
		want   string // substring of the finding, "" for none
	}{
		{"clean", map[string][]string{"PREROUTING": {"-P PREROUTING ACCEPT", jump}}, ""},
		{"accept first", map[string][]string{"PREROUTING": {"-A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j ACCEPT", jump}}, "rule 1 ACCEPTs"},
		{"accept after jump", map[string][]string{"PREROUTING": {jump, "-A PREROUTING -d 169.254.169.254/32 -j ACCEPT"}}, ""},
		{"other traffic", map[string][]string{"PREROUTING": {"-A PREROUTING -d 10.1.2.3/32 -j DNAT --to-destination 10.90.1.9", jump}}, ""},
		{"return", map[string][]string{"PREROUTING": {"-A PREROUTING -p tcp -j RETURN", jump}}, "RETURNs"},
		{"dnat", map[string][]string{"PREROUTING": {"-A PREROUTING -d 169.254.169.254/32 -p tcp -j DNAT --to-destination 10.0.0.1:80", jump}}, "NATs (DNAT)"},
		{"via user chain", map[string][]string{
			"PREROUTING": {"-A PREROUTING -j OTHER", jump},
			"OTHER":      {"-A OTHER -d 10.0.0.0/8 -j RETURN", "-A OTHER -p tcp --dport 80 -j ACCEPT"},
		}, "jumps to OTHER, where nat OTHER rule 2 ACCEPTs"},
		{"user chain returns", map[string][]string{
			"PREROUTING": {"-A PREROUTING -j OTHER", jump},
			"OTHER":      {"-A OTHER -j RETURN"},
		}, ""},
		{"non-terminal", map[string][]string{"PREROUTING": {"-A PREROUTING -j LOG --log-prefix x", jump}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := func(table, chain string) ([]string, error) {
				l, ok := tt.chains[chain]
				if !ok {
					return nil, fmt.Errorf("no chain %s", chain)
				}
				return l, nil
			}
			f, reached, err := findShadow(list, "nat", "PREROUTING", p, func(r rule) bool { return r.target == "neutron-l3-agent-PREROUTING" }, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" && (f != "" || !reached) {
				t.Errorf("finding %q reached=%v, want none", f, reached)
			}
			if tt.want != "" && !strings.Contains(f, tt.want) {
				t.Errorf("finding %q, want it to say %q", f, tt.want)
			}
		})
	}
}
