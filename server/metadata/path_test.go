package metadata

import "testing"

// FuzzNormalFastPath: whenever isNormal lets a path skip pyNormpath, the
// rewrite would indeed have left it unchanged.
func FuzzNormalFastPath(f *testing.F) {
	for _, s := range []string{"/", "/a/b", "/a/b/", "//a", "/a/./b", "/a/../b", "/.a", "/a.", "/..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		p = "/" + p
		if isNormal(p) && pyNormpath(p) != p {
			t.Errorf("isNormal(%q) but pyNormpath gives %q", p, pyNormpath(p))
		}
	})
}
