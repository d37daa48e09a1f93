package metadata

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mdctl/mdctl/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// checkGolden compares got with testdata/<name>.golden, rewriting it under
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run go test ./server/metadata -update and review the diff)\n--- got\n%s", path, got)
	}
}

// treePaths lists every path of an EC2 tree, parents first, keys sorted.
func treePaths(prefix string, n *node) []string {
	out := []string{prefix}
	if n.kind != dirNode {
		return out
	}
	keys := make([]string, 0, len(n.children))
	for k := range n.children {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		out = append(out, treePaths(prefix+"/"+k, n.children[k])...)
	}
	return out
}

// servedPaths is every listing and document a guest can ask for, plus the
// OpenStack names a version does not serve (to pin their errors).
func servedPaths(m *Metadata) []string {
	paths := []string{"/", "/ec2", "/openstack"}
	for _, v := range append(EC2Versions(), "latest") {
		paths = append(paths, treePaths("/"+v, m.ec2[v])...)
	}
	for _, v := range append(OpenStackVersions(), "latest") {
		paths = append(paths, "/openstack/"+v)
		for _, name := range []string{"meta_data.json", "user_data", "password", "vendor_data.json", "network_data.json", "vendor_data2.json"} {
			paths = append(paths, "/openstack/"+v+"/"+name)
		}
	}
	return append(paths, "/openstack/content/0000")
}

func renderLookups(m *Metadata) []byte {
	var b bytes.Buffer
	for _, p := range servedPaths(m) {
		r, err := m.Lookup(p)
		fmt.Fprintf(&b, "=== %s\n", p)
		if err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
			continue
		}
		fmt.Fprintf(&b, "content-type: %s\n%s\n", r.ContentType, r.Body)
	}
	return b.Bytes()
}

func renderFiles(files []File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "=== %s\n%s\n", f.Path, f.Data)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	cases := []struct {
		name string
		view store.InstanceView
		opts func() Options
	}{
		{"full", fullView(), fullOptions},
		{"minimal", minimalView(), minimalOptions},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Build(tc.view, tc.opts())
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name+"-api", renderLookups(m))

			o := tc.opts()
			o.ForConfigDrive = true
			cd, err := Build(tc.view, o)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name+"-configdrive", renderFiles(cd.ConfigDriveFiles()))
		})
	}
}
