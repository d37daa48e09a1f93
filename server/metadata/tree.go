package metadata

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// node is one point of the EC2 tree with its answer precomputed: a
// directory's listing, a list's lines or a leaf's value.
type node struct {
	kind     nodeKind
	children map[string]*node // dir
	items    map[string]bool  // list: its elements (see walk)
	body     []byte
}

type nodeKind int

const (
	leafNode nodeKind = iota
	dirNode
	listNode
)

// newTree turns a built value (obj, []string, string, int, []byte) into
// nodes, rendering each as nova's ec2_md_print would.
func newTree(v any) *node {
	switch x := v.(type) {
	case obj:
		n := &node{kind: dirNode, children: make(map[string]*node, len(x))}
		for _, m := range x {
			n.children[m.key] = newTree(m.val)
		}
		n.body = []byte(dirListing(x))
		return n
	case []string:
		n := &node{kind: listNode, items: make(map[string]bool, len(x))}
		for _, s := range x {
			n.items[s] = true
		}
		n.body = []byte(strings.Join(x, "\n"))
		return n
	case string:
		return &node{body: []byte(x)}
	case []byte:
		return &node{body: x}
	case int:
		return &node{body: []byte(strconv.Itoa(x))}
	}
	panic(fmt.Sprintf("metadata: no tree for %T", v))
}

// dirListing prints a dictionary: sorted keys one per line without a final
// newline; a sub-dictionary as "key/", or as its "_name" when it has one
// (public-keys' "0=<name>"); the "_name" key itself is never listed.
func dirListing(o obj) string {
	keys := make([]string, 0, len(o))
	for _, m := range o {
		if m.key != "_name" {
			keys = append(keys, m.key)
		}
	}
	slices.Sort(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		v, _ := o.get(k)
		sub, isDir := v.(obj)
		switch {
		case !isDir:
			lines[i] = k
		default:
			if name, ok := sub.get("_name"); ok {
				lines[i] = fmt.Sprint(name)
			} else {
				lines[i] = k + "/"
			}
		}
	}
	return strings.Join(lines, "\n")
}

// walk follows tokens the way nova's find_path_in_tree does, quirks
// included: a missing key is 404; indexing a leaf with the last token is
// Python's TypeError (500), with an earlier token a KeyError (404); a list
// "contains" its elements, so naming one is again a TypeError.
func (n *node) walk(tokens []string) (*node, error) {
	for i, tok := range tokens {
		switch n.kind {
		case dirNode:
			child, ok := n.children[tok]
			if !ok {
				return nil, ErrNotFound
			}
			n = child
		case listNode:
			if n.items[tok] {
				return nil, ErrLeafChild
			}
			return nil, ErrNotFound
		default:
			if i != len(tokens)-1 {
				return nil, ErrNotFound
			}
			return nil, ErrLeafChild
		}
	}
	return n, nil
}
