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

// TestPipelinePath: a deployed nova's urlmap folds every run of slashes
// (paste/urlmap.py URLMap.normalize_url, norm_url_re '//+'), so the
// handler's normpath never sees the two leading slashes it would keep.
func TestPipelinePath(t *testing.T) {
	tests := []struct {
		in, want string
		root     bool // the handler's normpath(path) == "/" after folding
	}{
		{"/", "/", true},
		{"//", "/", true},
		{"///", "/", true},
		{"//latest/meta-data/", "/latest/meta-data/", false},
		{"/latest//meta-data///hostname", "/latest/meta-data/hostname", false},
		{"//openstack//latest", "/openstack/latest", false},
		{"/./", "/./", true},
		{"/a/..", "/a/..", true},
		{"//a/../", "/a/../", true},
		{"/latest/..//..", "/latest/../..", true},
		{"/..a", "/..a", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got := PipelinePath(tt.in)
		if got != tt.want {
			t.Errorf("PipelinePath(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if IsRoot(got) != tt.root {
			t.Errorf("IsRoot(%q) = %v, want %v", got, IsRoot(got), tt.root)
		}
	}
}

// FuzzIsRoot: IsRoot's fast path agrees with normpath.
func FuzzIsRoot(f *testing.F) {
	for _, s := range []string{"/", "//", "/./", "/a/..", "/..", "//.", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if IsRoot(p) != (pyNormpath(p) == "/") {
			t.Errorf("IsRoot(%q) = %v, normpath %q", p, IsRoot(p), pyNormpath(p))
		}
	})
}
