package proxy

// Exact identity headers a guest must never set (lowercase, '-' form).
var identityHeaders = map[string]bool{
	"x-forwarded-for":         true,
	"x-instance-id":           true,
	"x-instance-id-signature": true,
	"x-tenant-id":             true,
	"x-request-id":            true, // the proxy names each request itself
	"forwarded":               true,
	"x-real-ip":               true,
}

// Prefixes of identity header families: neutron's router and network ids,
// nova's load-balancer provider headers, OVN's network id.
var identityPrefixes = []string{"x-neutron-", "x-metadata-provider", "x-ovn-"}

// isIdentity says whether a header name claims an identity. Names are
// compared case-insensitively with '_' as '-': a WSGI server behind a hop
// maps both to the same HTTP_X_… key.
func isIdentity[T string | []byte](name T) bool {
	var buf [64]byte
	if len(name) > len(buf) {
		return isIdentity(name[:len(buf)]) // every identity name and prefix is shorter
	}
	n := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		n[i] = c
	}
	if len(name) == len(buf) {
		// Truncated: only a prefix match can hold.
		return hasIdentityPrefix(n)
	}
	return identityHeaders[string(n)] || hasIdentityPrefix(n)
}

func hasIdentityPrefix(n []byte) bool {
	for _, p := range identityPrefixes {
		if len(n) >= len(p) && string(n[:len(p)]) == p {
			return true
		}
	}
	return false
}
