package store

import (
	"strings"
	"testing"
)

// FuzzNormalizeSetting: any value for any setting (config set, --set, a
// topology's settings) is refused with an error naming the setting, or
// normalized to a form that normalizes to itself and that ParseConfig
// takes: nothing a user types can store a value serve then cannot read.
func FuzzNormalizeSetting(f *testing.F) {
	defs := SettingDefs()
	for i, d := range defs {
		f.Add(i, d.Default)
		f.Add(i, " "+strings.ToUpper(d.Default)+" ")
	}
	for _, v := range []string{"", "-1", "99999999999999999999", "yes", "a@http://x", "4,6,4", "\x00", "é", "1e3"} {
		f.Add(0, v)
	}
	f.Fuzz(func(t *testing.T, i int, value string) {
		d := defs[uint(i)%uint(len(defs))]
		nv, err := NormalizeSetting(d.Key, value)
		if err != nil {
			if !strings.Contains(err.Error(), d.Key) {
				t.Fatalf("%s=%q: error %q does not name the setting", d.Key, value, err)
			}
			return
		}
		again, err := NormalizeSetting(d.Key, nv)
		if err != nil || again != nv {
			t.Fatalf("%s=%q normalized to %q, which normalizes to %q, %v", d.Key, value, nv, again, err)
		}
		if _, err := ParseConfig(map[string]string{d.Key: nv}, nil); err != nil {
			t.Fatalf("%s=%q (from %q): ParseConfig refuses it: %v", d.Key, nv, value, err)
		}
	})
}
