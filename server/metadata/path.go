package metadata

import "strings"

// pyNormpath is Python's posixpath.normpath, which nova applies to every
// request path: "//" collapses, "." vanishes, ".." climbs (never above
// root) and a trailing slash goes. One POSIX rule survives that a Go
// path.Clean would lose: exactly two leading slashes are kept, and nova then
// sees an empty first segment and answers with the EC2 version list.
func pyNormpath(p string) string {
	if p == "" {
		return "."
	}
	initial := 0
	if strings.HasPrefix(p, "/") {
		initial = 1
		if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
			initial = 2
		}
	}
	var comps []string
	for comp := range strings.SplitSeq(p, "/") {
		switch {
		case comp == "" || comp == ".":
			continue
		case comp != ".." || (initial == 0 && len(comps) == 0) ||
			(len(comps) > 0 && comps[len(comps)-1] == ".."):
			comps = append(comps, comp)
		case len(comps) > 0:
			comps = comps[:len(comps)-1]
		}
	}
	out := strings.Repeat("/", initial) + strings.Join(comps, "/")
	if out == "" {
		return "."
	}
	return out
}

// pathTokens turns a request path into nova's tokens: normalised, split,
// and prefixed with "ec2" unless it names the ec2 or openstack tree.
func pathTokens(p string) []string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	if !isNormal(p) {
		p = pyNormpath(p)
	}
	tokens := strings.Split(p, "/")[1:]
	switch tokens[0] {
	case "ec2", "openstack":
		return tokens
	case "":
		// "/" itself, or a path with two leading slashes (see pyNormpath).
		return []string{"ec2"}
	}
	return append([]string{"ec2"}, tokens...)
}

// isNormal reports whether p (starting with "/") is already what
// pyNormpath would return, so the common request skips the rewrite.
func isNormal(p string) bool {
	if p == "/" {
		return true
	}
	return !strings.HasSuffix(p, "/") && !strings.Contains(p, "//") && !strings.Contains(p, "/.")
}
