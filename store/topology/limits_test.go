package topology

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// aliasBomb is a "billion laughs": levels of anchors, each a list of ten
// aliases of the one before, 10^levels nodes once expanded.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("settings: &l0 {force_metadata: \"true\"}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d,", i-1), 10), ","))
	}
	fmt.Fprintf(&b, "instances: *l%d\n", levels)
	return b.String()
}

// TestParseLimits: documents that would cost a denial of service are
// refused, whole, with an error that says why; anchors as people use them
// still work.
func TestParseLimits(t *testing.T) {
	shared := "networks: [{name: n, project: p, cidr: 10.0.0.0/16}]\ninstances:\n"
	var many strings.Builder
	many.WriteString(shared + "  - {name: vm0, project: p, network: n, meta: &meta {role: web, tier: front}}\n")
	for i := 1; i < 2000; i++ {
		fmt.Fprintf(&many, "  - {name: vm%d, project: p, network: n, meta: *meta}\n", i)
	}
	huge := shared + strings.Repeat("  # padding padding padding padding padding padding padding\n", MaxBytes/60+1)
	for _, tc := range []struct {
		name, doc string
		want      string // "" when the document is fine
	}{
		{"alias bomb", aliasBomb(10), "expands to more than"},
		{"alias cycle", "instances: &a [*a]\n", "alias inside the node its anchor names"},
		{"over MaxBytes", huge, "MiB a topology may be"},
		{"an anchor per instance", many.String(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top, err := Parse([]byte(tc.doc), "big.yaml")
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %.500v", err)
				}
				if len(top.Instances) != 2000 || len(top.Instances[1999].Meta) != 2 {
					t.Fatalf("%d instances, the last meta %v", len(top.Instances), top.Instances[len(top.Instances)-1].Meta)
				}
				return
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Error(), tc.want) || !strings.HasPrefix(es[0].Error(), "big.yaml:") {
				t.Fatalf("error %.500v, want one naming big.yaml and %q", err, tc.want)
			}
			t.Logf("%s: %v", tc.name, es[0])
		})
	}
}
