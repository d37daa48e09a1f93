package configdrive

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/mdctl/mdctl/server/metadata"
)

// Limits every format shares, so one file list is valid for iso9660 and vfat
// alike (a drive must not change content when config_drive_format flips).
const (
	maxNameUnits = 64 // Joliet's limit in UCS-2 units; FAT LFN and RRIP allow more
	maxDepth     = 8  // ECMA-119's directory depth, root counting as 1
	maxPathLen   = 255
	maxFileSize  = 1<<32 - 1
)

// forbidden are the characters FAT LFN or Joliet cannot hold; a config drive
// never needs them.
const forbidden = "\"*/:<>?\\|;"

// node is one file or directory of the tree both writers lay out.
type node struct {
	name     string
	dir      bool
	data     []byte
	children []*node // sorted by name (byte order)
}

// buildTree checks every path and turns the flat list into a tree. Directories
// are implied by file paths, as nova's config drive has no empty ones.
func buildTree(files []metadata.File) (*node, error) {
	root := &node{dir: true}
	byPath := map[string]*node{"": root}
	for _, f := range files {
		parts, err := splitPath(f.Path)
		if err != nil {
			return nil, err
		}
		if int64(len(f.Data)) > maxFileSize {
			return nil, fmt.Errorf("configdrive: %s: %d bytes is over the 4 GiB file limit", f.Path, len(f.Data))
		}
		parent := root
		for i, name := range parts {
			key := strings.Join(parts[:i+1], "/")
			last := i == len(parts)-1
			n, ok := byPath[key]
			switch {
			case ok && last:
				if n.dir {
					return nil, fmt.Errorf("configdrive: %s is both a file and a directory", f.Path)
				}
				return nil, fmt.Errorf("configdrive: %s appears twice", f.Path)
			case ok && !n.dir:
				return nil, fmt.Errorf("configdrive: %s: %s is a file, not a directory", f.Path, key)
			case !ok:
				n = &node{name: name, dir: !last}
				if last {
					n.data = f.Data
				}
				byPath[key] = n
				parent.children = append(parent.children, n)
			}
			parent = n
		}
	}
	sortTree(root)
	return root, nil
}

func sortTree(n *node) {
	sort.Slice(n.children, func(i, j int) bool { return n.children[i].name < n.children[j].name })
	for _, c := range n.children {
		sortTree(c)
	}
}

// splitPath validates a drive path ("openstack/latest/meta_data.json") and
// returns its components.
func splitPath(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("configdrive: empty file path")
	}
	if len(p) > maxPathLen {
		return nil, fmt.Errorf("configdrive: %.40q…: path longer than %d bytes", p, maxPathLen)
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("configdrive: %q: path is not valid UTF-8", p)
	}
	parts := strings.Split(p, "/")
	if len(parts) > maxDepth-1 {
		return nil, fmt.Errorf("configdrive: %q: deeper than %d directories", p, maxDepth-1)
	}
	for _, name := range parts {
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("configdrive: %q: %w", p, err)
		}
	}
	return parts, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty path component (leading, trailing or double slash)")
	case name == "." || name == "..":
		return fmt.Errorf("component %q is not allowed", name)
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") || strings.HasPrefix(name, " "):
		return fmt.Errorf("name %q: leading spaces, trailing dots or spaces are lost on FAT", name)
	case len(utf16.Encode([]rune(name))) > maxNameUnits:
		return fmt.Errorf("name %q is longer than %d characters (Joliet's limit)", name, maxNameUnits)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(forbidden, r) {
			return fmt.Errorf("name %q holds %q, which FAT or Joliet cannot store", name, r)
		}
		if r > 0xffff {
			return fmt.Errorf("name %q holds %q, outside the UCS-2 range Joliet can store", name, r)
		}
	}
	return nil
}
