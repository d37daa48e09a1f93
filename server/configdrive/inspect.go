package configdrive

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Report is what Inspect finds on an image: its tree, and what a guest
// would miss or trip on compared with the drive nova writes.
type Report struct {
	Path     string   `json:"path"`
	Format   string   `json:"format"`
	Label    string   `json:"label"`
	Entries  []Entry  `json:"entries"`  // every directory and file, sorted by path
	Problems []string `json:"problems"` // empty when a guest finds everything
}

// Entry is one directory or file of an image.
type Entry struct {
	Path   string `json:"path"`
	Dir    bool   `json:"dir,omitempty"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// OK says the drive has everything a guest looks for.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Inspect reads the image at path (iso9660 or vfat, told apart by content)
// and checks its label and nova's layout (facts §2).
func Inspect(path string) (Report, error) {
	img, err := Read(path)
	if err != nil {
		return Report{}, err
	}
	r := Report{Path: path, Format: img.Format, Label: img.Label}
	for _, d := range img.Dirs {
		r.Entries = append(r.Entries, Entry{Path: d, Dir: true})
	}
	for _, f := range img.Files {
		sum := sha256.Sum256(f.Data)
		r.Entries = append(r.Entries, Entry{Path: f.Path, Size: len(f.Data), SHA256: hex.EncodeToString(sum[:])})
	}
	sort.Slice(r.Entries, func(i, j int) bool { return r.Entries[i].Path < r.Entries[j].Path })
	r.Problems = checkLayout(img)
	return r, nil
}

// nova writes these into openstack/latest on every drive. Not required:
// user_data (only when the instance has some) and vendor_data.json (only
// with the StaticJSON vendordata provider).
var latestFiles = []struct{ name, why string }{
	{"meta_data.json", "cloud-init's ConfigDrive source rejects the drive"},
	{"network_data.json", "the guest gets no network configuration from the drive"},
	{"vendor_data2.json", "the guest gets no dynamic vendor data"},
}

func checkLayout(img *Image) []string {
	var problems []string
	if !strings.EqualFold(img.Label, Label) {
		problems = append(problems, fmt.Sprintf("label is %q: cloud-init looks for a %s or %s volume and will not find this drive", img.Label, Label, strings.ToUpper(Label)))
	}
	files := map[string][]byte{}
	for _, f := range img.Files {
		files[f.Path] = f.Data
	}
	dirs := map[string]bool{}
	for _, d := range img.Dirs {
		dirs[d] = true
	}
	for _, want := range latestFiles {
		p := "openstack/latest/" + want.name
		if _, ok := files[p]; !ok {
			problems = append(problems, fmt.Sprintf("no %s: %s", p, want.why))
		}
	}
	if _, ok := files["ec2/latest/meta-data.json"]; !ok {
		problems = append(problems, "no ec2/latest/meta-data.json: the guest gets no EC2-style metadata from the drive")
	}
	// Every version directory must be complete: cloud-init picks the newest
	// version it knows, not necessarily latest.
	for _, d := range img.Dirs {
		parent, v := path.Split(d)
		if parent == "openstack/" && v != "content" && v != "latest" {
			if _, ok := files[d+"/meta_data.json"]; !ok {
				problems = append(problems, fmt.Sprintf("no %s/meta_data.json: a guest that reads version %s finds no metadata", d, v))
			}
		}
		if parent == "ec2/" && v != "latest" {
			if _, ok := files[d+"/meta-data.json"]; !ok {
				problems = append(problems, fmt.Sprintf("no %s/meta-data.json: a guest that reads EC2 version %s finds no metadata", d, v))
			}
		}
	}
	if md, ok := files["openstack/latest/meta_data.json"]; ok {
		problems = append(problems, checkMetaData(md, files)...)
	}
	return problems
}

// checkMetaData checks what cloud-init needs from meta_data.json and that
// every content_path it names is on the drive.
func checkMetaData(md []byte, files map[string][]byte) []string {
	var doc struct {
		UUID  string `json:"uuid"`
		Files []struct {
			Path        string `json:"path"`
			ContentPath string `json:"content_path"`
		} `json:"files"`
		NetworkConfig *struct {
			ContentPath string `json:"content_path"`
		} `json:"network_config"`
	}
	if err := json.Unmarshal(md, &doc); err != nil {
		return []string{fmt.Sprintf("openstack/latest/meta_data.json is not valid JSON (%v): cloud-init rejects the drive", err)}
	}
	var problems []string
	if doc.UUID == "" {
		problems = append(problems, "openstack/latest/meta_data.json has no uuid: cloud-init has no instance id")
	}
	refs := []string{}
	for _, f := range doc.Files {
		refs = append(refs, f.ContentPath)
	}
	if doc.NetworkConfig != nil {
		refs = append(refs, doc.NetworkConfig.ContentPath)
	}
	for _, ref := range refs {
		p := "openstack/" + strings.TrimPrefix(ref, "/")
		if _, ok := files[p]; !ok {
			problems = append(problems, fmt.Sprintf("meta_data.json names content_path %q but %s is not on the drive", ref, p))
		}
	}
	return problems
}
