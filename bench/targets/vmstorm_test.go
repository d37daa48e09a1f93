package targets

import (
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/internal/testimage"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/store/topology"
)

func TestVMStormTopoParses(t *testing.T) {
	top, err := topology.Parse([]byte(vmStormTopo(3)), "vmstorm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Instances) != 3 || len(top.Networks) != 1 || top.Networks[0].Router != "r1" {
		t.Errorf("topology: %d instances, networks %+v", len(top.Instances), top.Networks)
	}
}

// The verdict: met only when every VM crawled within 2 s with no error;
// a VM that never reported counts as an error and stays out of the medians.
func TestStormFindings(t *testing.T) {
	ok := func(name string, crawl time.Duration) vmResult {
		return vmResult{name: name, final: 90 * time.Second, timing: testimage.Timing{Search: 3 * time.Second, DHCP: time.Second, Metadata: crawl, Reads: 30}}
	}
	cases := []struct {
		name string
		res  []vmResult
		met  rig.Verdict
		want string
	}{
		{"all fast", []vmResult{ok("a", time.Second), ok("b", 1500*time.Millisecond)}, rig.Met, "crawl 1.50 s (worst 1.50 s)"},
		{"one slow", []vmResult{ok("a", time.Second), ok("b", 3*time.Second)}, rig.Missed, "worst 3.00 s"},
		{"one dead", []vmResult{ok("a", time.Second), {name: "b", errs: []string{"no report"}}}, rig.Missed, "crawl 1.00 s (worst 1.00 s)"},
	}
	for _, c := range cases {
		finds := stormFindings(len(c.res), server.LabVM{Accel: "tcg"}, c.res, testimage.Image{Dir: "/x"})
		last := finds[len(finds)-1]
		if len(finds) != len(c.res)+1 || last.Met != c.met || !strings.Contains(last.Value, c.want) {
			t.Errorf("%s: %d findings, last %+v; want verdict %v with %q", c.name, len(finds), last, c.met, c.want)
		}
	}
}
