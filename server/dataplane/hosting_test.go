package dataplane

import (
	"reflect"
	"testing"

	"github.com/mdctl/mdctl/store"
)

// TestHosted: a node's plan keeps every segment and only the routers and
// DHCP networks bound to it.
func TestHosted(t *testing.T) {
	d := Desired{
		Networks:    []NetSegment{{NetworkID: "n1"}, {NetworkID: "n2"}},
		Routers:     []RouterNS{{RouterID: "r1"}, {RouterID: "r2"}},
		DHCP:        []DHCPNS{{NetworkID: "n1"}, {NetworkID: "n2"}},
		DHCPServers: []DHCPServer{{NetworkID: "n1"}, {NetworkID: "n2"}},
	}
	rb := []store.Binding{{ID: "r1", Node: "a"}, {ID: "r2", Node: "b"}}
	nb := []store.Binding{{ID: "n1", Node: "b"}, {ID: "n2", Node: "a"}, {ID: "n2", Node: "b"}}
	tests := []struct {
		node string
		want Desired
	}{
		{"a", Desired{Networks: d.Networks, Routers: []RouterNS{{RouterID: "r1"}},
			DHCP: []DHCPNS{{NetworkID: "n2"}}, DHCPServers: []DHCPServer{{NetworkID: "n2"}}}},
		{"b", Desired{Networks: d.Networks, Routers: []RouterNS{{RouterID: "r2"}}, DHCP: d.DHCP, DHCPServers: d.DHCPServers}},
		{"c", Desired{Networks: d.Networks}},
	}
	for _, tt := range tests {
		if got := Hosted(d, NewHosting(tt.node, rb, nb)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("node %s: Hosted =\n%+v\nwant\n%+v", tt.node, got, tt.want)
		}
	}
	if got := Hosted(d, NewHosting("a", nil, nil)); len(got.Routers)+len(got.DHCP)+len(got.DHCPServers) != 0 {
		t.Errorf("nothing bound, yet node a builds %+v", got)
	}
}
