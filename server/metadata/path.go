package metadata

import "strings"

// This file is the one home of request-path rules: what a deployed
// nova-api-metadata's pipeline does to a path (PipelinePath) and what its
// handler then does (IsRoot, pathTokens).

// PipelinePath is the path nova's handler is given by a deployed
// nova-api-metadata: paste's urlmap, the first stage of api-paste.ini's
// [composite:metadata], folds every run of slashes into one
// (paste/urlmap.py URLMap.__call__, normalize_url with norm_url_re '//+'),
// as Python's http.server already does for a leading run (parse_request,
// gh-87389). So "//latest/meta-data/" is the meta-data listing, not the
// EC2 version list the bare handler would give. p is the decoded path, as
// eventlet's PATH_INFO is.
func PipelinePath(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// IsRoot reports os.path.normpath(p) == "/", nova's test in
// MetadataRequestHandler.__call__ (nova/api/metadata/handler.py) for the
// EC2 version list it serves without identifying anyone. It allocates only
// for paths with a ".." segment.
func IsRoot(p string) bool {
	if p == "/" {
		return true
	}
	if strings.Contains(p, "..") {
		return pyNormpath(p) == "/"
	}
	if len(p) == 0 || p[0] != '/' || (len(p) > 1 && p[1] == '/' && (len(p) == 2 || p[2] != '/')) {
		return false // relative, or exactly two leading slashes (kept by normpath)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg != "" && seg != "." {
			return false
		}
	}
	return true
}

// pyNormpath is Python's posixpath.normpath, which nova's handler applies to
// every request path (base.py InstanceMetadata.lookup): "//" collapses, "." vanishes, ".." climbs (never above
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

// pathTokens turns a request path into nova's tokens (base.py
// InstanceMetadata.lookup): normalised, split, and prefixed with "ec2"
// unless it names the ec2 or openstack tree.
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
