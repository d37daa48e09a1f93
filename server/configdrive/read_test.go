package configdrive

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/metadata"
)

// memDisk is a sparse in-memory image (4 KiB pages), so property tests can
// write 64 MiB vfat drives without 64 MiB each.
type memDisk struct {
	pages map[int64][]byte
	size  int64
}

const memPage = 4096

func newMemDisk() *memDisk { return &memDisk{pages: map[int64][]byte{}} }

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); {
		pg, in := (off+int64(i))/memPage, int((off+int64(i))%memPage)
		if m.pages[pg] == nil {
			m.pages[pg] = make([]byte, memPage)
		}
		i += copy(m.pages[pg][in:], p[i:])
	}
	m.size = max(m.size, off+int64(len(p)))
	return len(p), nil
}

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); {
		pg, in := (off+int64(i))/memPage, int((off+int64(i))%memPage)
		var n int
		if page := m.pages[pg]; page != nil {
			n = copy(p[i:], page[in:])
		} else {
			n = copy(p[i:], make([]byte, memPage-in))
		}
		i += n
	}
	return len(p), nil
}

func (m *memDisk) Write(p []byte) (int, error) { return m.WriteAt(p, m.size) }

// roundTrip writes files in format and reads them back with this package's reader.
func roundTrip(format string, files []metadata.File) (*Image, error) {
	d := newMemDisk()
	var err error
	now := time.Date(2025, 4, 4, 12, 0, 0, 0, time.UTC)
	if format == FormatISO9660 {
		err = writeISO(d, files, Label, now)
	} else {
		err = writeVFAT(d, files, Label, now)
	}
	if err != nil {
		return nil, err
	}
	return readImage(d, d.size)
}

func TestReadRoundTrip(t *testing.T) {
	files := realisticFiles()
	for _, format := range []string{FormatISO9660, FormatVFAT} {
		t.Run(format, func(t *testing.T) {
			img, err := roundTrip(format, files)
			if err != nil {
				t.Fatal(err)
			}
			if img.Format != format || img.Label != Label {
				t.Errorf("format %q label %q, want %q %q", img.Format, img.Label, format, Label)
			}
			if err := sameFiles(files, img.Files); err != nil {
				t.Error(err)
			}
			wantDirs := []string{"ec2", "ec2/2009-04-04", "ec2/latest", "extra", "extra/Deeply", "extra/Deeply/Nested",
				"openstack", "openstack/2012-08-10", "openstack/2013-10-17", "openstack/2015-10-15",
				"openstack/2016-10-06", "openstack/content", "openstack/latest"}
			if !reflect.DeepEqual(img.Dirs, wantDirs) {
				t.Errorf("dirs = %q\nwant %q", img.Dirs, wantDirs)
			}
		})
	}
}

// TestReadImagesOfOtherTools checks the readers on what xorriso (as
// genisoimage, nova's command line) and mtools make, not just on ours.
func TestReadImagesOfOtherTools(t *testing.T) {
	needTools(t, "xorriso", "mformat", "mcopy")
	files := realisticFiles()
	src := filepath.Join(t.TempDir(), "src")
	for _, f := range files {
		p := filepath.Join(src, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		format string
		make   func(img string)
	}{
		{FormatISO9660, func(img string) {
			run(t, "xorriso", "-as", "genisoimage", "-o", img, "-ldots", "-allow-lowercase", "-allow-multidot", "-l",
				"-publisher", "OpenStack Nova", "-quiet", "-J", "-r", "-V", "config-2", src)
		}},
		{FormatISO9660 + "-joliet-only", func(img string) {
			run(t, "xorriso", "-as", "genisoimage", "-o", img, "-J", "-V", "config-2", src)
		}},
		{FormatVFAT, func(img string) {
			run(t, "mformat", "-C", "-i", img, "-T", "131072", "-v", "config-2", "::")
			run(t, "mcopy", "-s", "-i", img, src+"/ec2", src+"/openstack", src+"/extra", "::/")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk.config")
			tc.make(img)
			got, err := Read(img)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(tc.format, got.Format) || !strings.EqualFold(got.Label, Label) {
				t.Errorf("format %q label %q", got.Format, got.Label)
			}
			if err := sameFiles(files, got.Files); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	cases := map[string][]byte{
		"empty":      {},
		"zeros":      make([]byte, 64<<10),
		"text":       []byte(strings.Repeat("not a drive\n", 5000)),
		"iso header": append(make([]byte, 16*sector), []byte("\x01CD001\x01")...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Read(p); err == nil {
				t.Fatal("Read accepted garbage")
			}
		})
	}
}

func TestInspect(t *testing.T) {
	without := func(drop ...string) []metadata.File {
		var out []metadata.File
		for _, f := range realisticFiles() {
			if !slices.Contains(drop, f.Path) {
				out = append(out, f)
			}
		}
		return out
	}
	replace := func(p string, data []byte) []metadata.File {
		out := without(p)
		return append(out, metadata.File{Path: p, Data: data})
	}
	cases := []struct {
		name  string
		files []metadata.File
		want  []string // substrings, one per expected problem
	}{
		{"complete", realisticFiles(), nil},
		{"no latest meta_data", without("openstack/latest/meta_data.json"), []string{"no openstack/latest/meta_data.json"}},
		{"no network_data", without("openstack/latest/network_data.json"), []string{"no openstack/latest/network_data.json"}},
		{"no ec2", without("ec2/latest/meta-data.json", "ec2/2009-04-04/meta-data.json"),
			[]string{"no ec2/latest/meta-data.json", "no ec2/2009-04-04/meta-data.json"}},
		{"incomplete version", without("openstack/2013-10-17/meta_data.json"), []string{"no openstack/2013-10-17/meta_data.json"}},
		{"content missing", without("openstack/content/0000"), []string{`content_path "/content/0000"`}},
		{"bad json", replace("openstack/latest/meta_data.json", []byte("{")), []string{"not valid JSON"}},
		{"no uuid", replace("openstack/latest/meta_data.json", []byte(`{"name":"x"}`)), []string{"has no uuid"}},
	}
	for _, format := range []string{FormatISO9660, FormatVFAT} {
		for _, tc := range cases {
			t.Run(format+"/"+tc.name, func(t *testing.T) {
				img := filepath.Join(t.TempDir(), "disk.config")
				if err := WriteFile(img, format, tc.files); err != nil {
					t.Fatal(err)
				}
				r, err := Inspect(img)
				if err != nil {
					t.Fatal(err)
				}
				if r.Format != format || r.Label != Label {
					t.Errorf("format %q label %q", r.Format, r.Label)
				}
				if len(r.Problems) != len(tc.want) {
					t.Fatalf("problems = %q, want %d matching %q", r.Problems, len(tc.want), tc.want)
				}
				for i, w := range tc.want {
					if !strings.Contains(r.Problems[i], w) {
						t.Errorf("problem %d = %q, want it to mention %q", i, r.Problems[i], w)
					}
				}
				if r.OK() != (len(tc.want) == 0) {
					t.Errorf("OK() = %v with problems %q", r.OK(), r.Problems)
				}
				if got := len(r.Entries); got != len(tc.files)+13 && tc.name == "complete" {
					t.Errorf("%d entries, want %d files + 13 dirs", got, len(tc.files))
				}
			})
		}
	}
}

func TestInspectWrongLabel(t *testing.T) {
	for _, format := range []string{FormatISO9660, FormatVFAT} {
		t.Run(format, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "disk")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			if format == FormatISO9660 {
				err = WriteISO9660(f, realisticFiles(), "cidata")
			} else {
				err = WriteVFAT(f, realisticFiles(), "cidata")
			}
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			r, err := Inspect(img)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Problems) != 1 || !strings.Contains(r.Problems[0], `label is "cidata"`) {
				t.Errorf("problems = %q", r.Problems)
			}
		})
	}
}

// TestVFATOverwritesOldBytes writes a drive over a file full of 0xFF: every
// region the filesystem uses must be written, not assumed zero.
func TestVFATOverwritesOldBytes(t *testing.T) {
	needTools(t, "mcopy")
	img := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(img, bytes.Repeat([]byte{0xFF}, 80<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	files := realisticFiles()
	if err := WriteVFAT(f, files, Label); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if st, _ := os.Stat(img); st.Size() != vfatSize {
		t.Errorf("size %d, want %d", st.Size(), vfatSize)
	}
	if err := sameFiles(files, readTree(t, extract(t, FormatVFAT, img))); err != nil {
		t.Error(err)
	}
}

func TestWriteFileIsAtomic(t *testing.T) {
	bad := map[string]struct {
		format string
		files  []metadata.File
		errHas string
	}{
		"bad format":      {"qcow2", realisticFiles(), "want iso9660 or vfat"},
		"bad path":        {FormatISO9660, append(realisticFiles(), metadata.File{Path: "a//b"}), "empty path component"},
		"dup path":        {FormatVFAT, append(realisticFiles(), realisticFiles()[0]), "appears twice"},
		"file and dir":    {FormatISO9660, append(realisticFiles(), metadata.File{Path: "ec2/latest"}), "both a file and a directory"},
		"too big for fat": {FormatVFAT, []metadata.File{{Path: "big", Data: make([]byte, 65<<20)}}, "do not fit"},
	}
	for name, tc := range bad {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "disk.config")
			if err := os.WriteFile(target, []byte("previous drive"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteFile(target, tc.format, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.errHas)
			}
			if got, _ := os.ReadFile(target); string(got) != "previous drive" {
				t.Errorf("target changed to %d bytes", len(got))
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
	t.Run("replaces", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "disk.config")
		os.WriteFile(target, []byte("previous drive"), 0o600)
		if err := WriteFile(target, FormatISO9660, realisticFiles()); err != nil {
			t.Fatal(err)
		}
		img, err := Read(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := sameFiles(realisticFiles(), img.Files); err != nil {
			t.Error(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("left behind: %v", entries)
		}
	})
}

func TestBadNamesAreRefusedClearly(t *testing.T) {
	cases := map[string]string{
		"":                        "empty file path",
		"/abs":                    "empty path component",
		"a/../b":                  `component ".."`,
		"trailing.":               "trailing dots",
		"colon:name":              "FAT or Joliet cannot store",
		"ctrl\x01":                "FAT or Joliet cannot store",
		"emoji\U0001F600":         "UCS-2",
		"bad\xffutf8":             "not valid UTF-8",
		strings.Repeat("n", 65):   "longer than 64",
		"a/b/c/d/e/f/g/h":         "deeper than",
		strings.Repeat("d/", 130): "longer than 255",
	}
	for p, want := range cases {
		for _, format := range []string{FormatISO9660, FormatVFAT} {
			_, err := roundTrip(format, []metadata.File{{Path: p, Data: []byte("x")}})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s %q: err = %v, want one mentioning %q", format, p, err, want)
			}
		}
	}
}

// FuzzWrite: any name and content either makes an image that reads back
// identical in both formats, or is refused with a configdrive error before
// anything is written.
func FuzzWrite(f *testing.F) {
	f.Add("openstack/latest/meta_data.json", []byte(`{"uuid":"x"}`), "user_data", 0)
	f.Add("a b/ÜBER lange Datei.tar.gz", []byte{0, 1, 2, 255}, "A B", 65*1024)
	f.Add("x", []byte{}, "X", 0)
	f.Add("dir/x;1", []byte("semi"), "dir/X", 2049)
	f.Add("foo bar", []byte("a"), "foo_bar", 1)
	f.Fuzz(func(t *testing.T, p1 string, data []byte, p2 string, n2 int) {
		if n2 < 0 || n2 > 200<<10 {
			n2 = 0
		}
		files := []metadata.File{{Path: p1, Data: data}, {Path: p2, Data: bytes.Repeat([]byte{0xA5}, n2)}}
		_, treeErr := buildTree(files)
		for _, format := range []string{FormatISO9660, FormatVFAT} {
			img, err := roundTrip(format, files)
			if treeErr != nil {
				if err == nil || !strings.HasPrefix(err.Error(), "configdrive: ") {
					t.Fatalf("%s: invalid tree (%v) gave err %v", format, treeErr, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: valid tree refused: %v", format, err)
			}
			if err := sameFiles(files, img.Files); err != nil {
				t.Fatalf("%s: %v", format, err)
			}
		}
	})
}

// TestRandomTreesReadByRealTools is the property test against the real
// readers: random trees with colliding short names, odd but legal names,
// empty and sector-straddling files.
func TestRandomTreesReadByRealTools(t *testing.T) {
	needTools(t, "osirrox", "mcopy")
	names := []string{"a", "A", "meta_data.json", "META_DATA.JSON", "x y", "x_y", "Ñandú", "日本語", "long-name-number-one.txt",
		"long-name-number-two.txt", "long-name-number-one.tx", ".hidden", "a.b.c.d", "(paren)", "{brace}", "tab\tname", "1234567890123456789012345678901234"}
	for seed := 0; seed < 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			var files []metadata.File
			seen := map[string]bool{}
			for i := 0; i < 40; i++ {
				h := (seed*7919 + i*104729) % 1000003
				depth := 1 + h%3
				parts := make([]string, depth)
				for d := range parts {
					parts[d] = names[(h/(d+1)+d*5)%len(names)]
				}
				p := strings.Join(parts, "/")
				data := bytes.Repeat([]byte{byte(h)}, (h*31)%5000)
				if seen[p] {
					continue
				}
				seen[p] = true
				files = append(files, metadata.File{Path: p, Data: data})
			}
			if _, err := buildTree(files); err != nil {
				// Random paths may make a file where another needs a directory.
				var kept []metadata.File
				for _, f := range files {
					if _, err := buildTree(append(kept, f)); err == nil {
						kept = append(kept, f)
					}
				}
				files = kept
			}
			for _, format := range []string{FormatISO9660, FormatVFAT} {
				img := filepath.Join(t.TempDir(), "disk")
				if err := WriteFile(img, format, files); err != nil {
					t.Fatal(err)
				}
				if err := sameFiles(files, readTree(t, extract(t, format, img))); err != nil {
					t.Errorf("%s: %v", format, err)
				}
			}
		})
	}
}

// FuzzRead: the readers (and inspect's layout check) take untrusted
// images; corrupting a valid one in a few places must give an image or an
// error, never a panic or a hang.
func FuzzRead(f *testing.F) {
	small := []metadata.File{{Path: "openstack/latest/meta_data.json", Data: []byte(`{"uuid":"u"}`)}, {Path: "Long_Name.json", Data: []byte("x")}}
	for _, format := range []string{FormatISO9660, FormatVFAT} {
		d := newMemDisk()
		if format == FormatISO9660 {
			_ = writeISO(d, small, Label, time.Unix(0, 0))
		} else {
			_ = writeVFAT(d, small, Label, time.Unix(0, 0))
		}
		f.Add(format == FormatVFAT, uint32(0), []byte{})
		f.Add(format == FormatVFAT, uint32(16*sector+156), []byte{0xff, 0xff, 0xff, 0xff})
		f.Add(format == FormatVFAT, uint32(0x0B), []byte{0, 0, 0})
	}
	images := map[bool][]byte{}
	for _, vfat := range []bool{false, true} {
		d := newMemDisk()
		if vfat {
			_ = writeVFAT(d, small, Label, time.Unix(0, 0))
		} else {
			_ = writeISO(d, small, Label, time.Unix(0, 0))
		}
		// Only the used front of the vfat image matters; keep fuzz inputs small.
		size := d.size
		if vfat {
			size = 1 << 20
		}
		buf := make([]byte, size)
		d.ReadAt(buf, 0)
		images[vfat] = buf
	}
	f.Fuzz(func(t *testing.T, vfat bool, off uint32, patch []byte) {
		img := bytes.Clone(images[vfat])
		if len(img) == 0 {
			t.Skip()
		}
		copy(img[int(off)%len(img):], patch)
		// What `mdctl configdrive inspect` does with an image: read it,
		// then check its layout.
		if read, err := readImage(bytes.NewReader(img), int64(len(img))); err == nil {
			_ = checkLayout(read)
		}
	})
}

// TestReadRefusesDirectoryLoops: two subdirectory entries pointing back at
// their own directory would make a naive walk exponential.
func TestReadRefusesDirectoryLoops(t *testing.T) {
	d := newMemDisk()
	if err := writeVFAT(d, []metadata.File{{Path: "A/B", Data: []byte("b")}, {Path: "A/C", Data: []byte("c")}}, Label, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	g := fatGeometry()
	dirA := int64(g.dataStart) * fatSectorSize // cluster 2: ".", "..", "B", "C"
	for _, entry := range []int64{2, 3} {
		e := make([]byte, 32)
		d.ReadAt(e, dirA+entry*32)
		e[11] = 0x10
		e[26], e[27] = 2, 0
		d.WriteAt(e, dirA+entry*32)
	}
	_, err := readImage(d, d.size)
	if err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("err = %v, want a directory loop error", err)
	}
}
