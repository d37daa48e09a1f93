package metadata

import (
	"errors"
	"testing"
)

// FuzzLookup: any path gives a Response with a content type, or one of the
// sentinel errors; never a panic.
func FuzzLookup(f *testing.F) {
	for _, seed := range []string{
		"", "/", "//", "/latest/meta-data/", "/openstack/latest/meta_data.json",
		"/openstack/content/0000", "/latest/meta-data/hostname/x", "/../..//./ec2/",
		"/latest/meta-data/security-groups/default", "/openstack/latest/content",
		"/openstack/2013-04-04/password", "\x00/\xff", "openstack",
	} {
		f.Add(seed)
	}
	m, err := Build(fullView(), fullOptions())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, err := m.Lookup(path)
		switch {
		case err == nil:
			if r.ContentType != TextPlain && r.ContentType != ApplicationJSON {
				t.Errorf("Lookup(%q): content type %q", path, r.ContentType)
			}
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrLeafChild), errors.Is(err, ErrPassword):
		default:
			t.Errorf("Lookup(%q): unexpected error %v", path, err)
		}
	})
}
