package topology

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/store"
)

const groupsTopology = `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
  - {name: net2, project: demo, cidr: 10.90.2.0/24}
instances:
  - name: plain            # no groups named: neutron's default
    project: demo
    networks: [net1, net2]
  - name: web              # the server's groups go to each port nova creates
    project: demo
    security_groups: [web, ssh]
    ports:
      - {network: net1}
      - {network: net2, security_groups: [db]}
  - name: open             # an empty list: no groups (port security off)
    project: demo
    network: net1
    security_groups: []
`

// Security groups bind per port, as neutron does; an instance's groups are
// those of each port that names none, and no groups at all means the
// project's "default" (neutron's default security group).
func TestApplySecurityGroups(t *testing.T) {
	st := openStore(t)
	mustApply(t, st, groupsTopology)
	want := map[string][][]string{
		"plain": {{"default"}, {"default"}},
		"web":   {{"web", "ssh"}, {"db"}},
		"open":  {nil},
	}
	for name, groups := range want {
		v, err := st.InstanceView(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		for _, p := range v.Ports {
			got = append(got, p.Port.SecurityGroups)
		}
		if !slices.EqualFunc(got, groups, slices.Equal) {
			t.Errorf("%s: port groups %q, want %q", name, got, groups)
		}
	}
	// The same file again changes nothing; another group updates the port.
	if res := mustApply(t, st, groupsTopology); res.Changed() {
		t.Errorf("second apply changed: %+v", res.Changes)
	}
	res := mustApply(t, st, strings.Replace(groupsTopology, "[db]", "[db, default]", 1))
	if res.Count(Updated) != 1 {
		t.Errorf("want one port updated: %+v", res.Changes)
	}
}

func TestSecurityGroupErrors(t *testing.T) {
	for _, tc := range []struct{ name, groups, want string }{
		{"repeated", "[web, web]", "instances[0].security_groups: security group web is given twice"},
		{"empty name", `[""]`, "instances[0].security_groups: security group names must be 1 to 255 characters"},
		{"too long", "[" + strings.Repeat("g", 256) + "]", "security group names must be 1 to 255 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "instances:\n  - {name: vm1, project: demo, network: net1, security_groups: " + tc.groups + "}\n" +
				"networks:\n  - {name: net1, project: demo, cidr: 10.90.1.0/24}\n"
			_, err := Parse([]byte(src), "topology.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// meta keeps the file's order (nova's rows in insertion order), and a
// later apply follows nova's update in place: kept keys keep their places,
// new keys go last (nova/db/main/api.py _instance_metadata_update_in_place).
func TestApplyMetaOrder(t *testing.T) {
	st := openStore(t)
	src := `
networks:
  - {name: net1, project: demo, cidr: 10.90.1.0/24}
instances:
  - name: vm1
    project: demo
    network: net1
    meta:
      zeta: "1"
      alpha: "2"
      mid: "3"
`
	mustApply(t, st, src)
	meta := func() store.Meta {
		v, err := st.InstanceView(context.Background(), "vm1")
		if err != nil {
			t.Fatal(err)
		}
		return v.Instance.Meta
	}
	if got, want := meta(), (store.Meta{{Key: "zeta", Value: "1"}, {Key: "alpha", Value: "2"}, {Key: "mid", Value: "3"}}); !slices.Equal(got, want) {
		t.Errorf("meta = %v, want %v", got, want)
	}
	// Reordering the file is no change, as it would be none to nova's rows.
	reordered := strings.Replace(src, "      zeta: \"1\"\n      alpha: \"2\"\n", "      alpha: \"2\"\n      zeta: \"1\"\n", 1)
	if res := mustApply(t, st, reordered); res.Changed() {
		t.Errorf("reordered meta changed: %+v", res.Changes)
	}
	edited := strings.Replace(src, "      zeta: \"1\"\n", "      new: \"0\"\n", 1)
	mustApply(t, st, edited)
	if got, want := meta(), (store.Meta{{Key: "alpha", Value: "2"}, {Key: "mid", Value: "3"}, {Key: "new", Value: "0"}}); !slices.Equal(got, want) {
		t.Errorf("after edit meta = %v, want %v", got, want)
	}
}
