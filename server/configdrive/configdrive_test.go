package configdrive

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/server/metadata"
)

// realisticFiles is a config drive as nova lays it out, with the awkward
// cases: binary and 65 KiB user data, empty files, mixed-case long names,
// nested directories.
func realisticFiles() []metadata.File {
	rng := rand.New(rand.NewPCG(1, 2))
	binary := make([]byte, 4096)
	for i := range binary {
		binary[i] = byte(rng.UintN(256))
	}
	big := bytes.Repeat([]byte("#cloud-config\nruncmd: [echo hi]\n"), 65*1024/32+1)[:65*1024+7]
	md := []byte(`{"uuid": "8b0a3fd4-2c0e-4d8b-9a4b-0d0c6a1f3e21", "name": "vm1", "hostname": "vm1.novalocal", "launch_index": 0, "availability_zone": "nova", "project_id": "6f8e3a2b1c9d4e5f8a7b6c5d4e3f2a1b", "files": [{"path": "/etc/motd", "content_path": "/content/0000"}]}`)
	files := []metadata.File{
		{Path: "ec2/2009-04-04/meta-data.json", Data: []byte(`{"instance-id": "i-00000001"}`)},
		{Path: "ec2/2009-04-04/user-data", Data: binary},
		{Path: "ec2/latest/meta-data.json", Data: []byte(`{"instance-id": "i-00000001"}`)},
		{Path: "ec2/latest/user-data", Data: binary},
		{Path: "openstack/content/0000", Data: []byte("hello motd\n")},
		{Path: "openstack/content/0001", Data: nil},
	}
	for _, v := range []string{"2012-08-10", "2013-10-17", "2015-10-15", "2016-10-06", "latest"} {
		files = append(files,
			metadata.File{Path: "openstack/" + v + "/meta_data.json", Data: md},
			metadata.File{Path: "openstack/" + v + "/user_data", Data: big},
			metadata.File{Path: "openstack/" + v + "/vendor_data.json", Data: []byte("{}")},
			metadata.File{Path: "openstack/" + v + "/network_data.json", Data: []byte(`{"links": [], "networks": [], "services": []}`)},
			metadata.File{Path: "openstack/" + v + "/vendor_data2.json", Data: []byte{}},
		)
	}
	files = append(files,
		metadata.File{Path: "extra/Deeply/Nested/Mixed_Case-Long.File.Name.json", Data: []byte("x")},
		metadata.File{Path: "extra/UPPER", Data: []byte("UP")},
		metadata.File{Path: "extra/a b c (copy) ümlaut.txt", Data: []byte("spaces")},
		metadata.File{Path: "extra/name_with_exactly_sixty_four_characters_for_the_joliet_lim", Data: []byte("64")},
	)
	return files
}

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install xorriso mtools util-linux, or make test-deps)", tool)
		}
	}
}

// run runs a real image tool. mtools names vfat files in the locale's
// charset, so it gets a UTF-8 one: where none is set (a fresh machine, CI,
// env -i) every non-ASCII letter became "_".
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// readTree lists every regular file under dir as drive files.
func readTree(t *testing.T, dir string) []metadata.File {
	t.Helper()
	var out []metadata.File
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, metadata.File{Path: filepath.ToSlash(rel), Data: data})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedFiles(files []metadata.File) []metadata.File {
	out := append([]metadata.File(nil), files...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// sameFiles reports the first difference between two file lists, ignoring order.
func sameFiles(want, got []metadata.File) error {
	w, g := sortedFiles(want), sortedFiles(got)
	for i := 0; i < len(w) || i < len(g); i++ {
		switch {
		case i >= len(g):
			return fmt.Errorf("missing %s", w[i].Path)
		case i >= len(w):
			return fmt.Errorf("unexpected %s", g[i].Path)
		case w[i].Path != g[i].Path:
			return fmt.Errorf("path %d: want %q, got %q", i, w[i].Path, g[i].Path)
		case !bytes.Equal(w[i].Data, g[i].Data):
			return fmt.Errorf("%s: content differs (want %d bytes sha256 %x, got %d bytes sha256 %x)",
				w[i].Path, len(w[i].Data), sha256.Sum256(w[i].Data), len(g[i].Data), sha256.Sum256(g[i].Data))
		}
	}
	return nil
}

// extract reads an image with the userspace tools cloud-init's harness uses.
func extract(t *testing.T, format, img string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "x")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	switch format {
	case FormatISO9660:
		run(t, "osirrox", "-indev", img, "-extract", "/", dir)
	case FormatVFAT:
		run(t, "mcopy", "-s", "-n", "-i", img, "::/*", dir+"/")
	}
	return dir
}

func TestImagesReadByRealTools(t *testing.T) {
	needTools(t, "blkid", "osirrox", "mcopy")
	files := realisticFiles()
	for _, format := range []string{FormatISO9660, FormatVFAT} {
		t.Run(format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.config")
			if err := WriteFile(img, format, files); err != nil {
				t.Fatal(err)
			}
			if got := run(t, "blkid", "-o", "value", "-s", "TYPE", img); got != format {
				t.Errorf("blkid TYPE = %q, want %q", got, format)
			}
			if got := run(t, "blkid", "-o", "value", "-s", "LABEL", img); got != Label {
				t.Errorf("blkid LABEL = %q, want %q", got, Label)
			}
			if err := sameFiles(files, readTree(t, extract(t, format, img))); err != nil {
				t.Errorf("extracted tree: %v", err)
			}
		})
	}
}
