package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// Guests' Host headers. haproxy, as neutron runs it, forwards whatever Host
// a guest sends without reading it, and the agent states its own Host to
// nova: the guest's Host decides nothing on the metadata path. fasthttp,
// though, parses Host as a URI authority before the handler runs and
// answers 400 when it does not parse. The first client that trips it is
// cloud-init >= 23.1 on a network with IPv6: it asks
// http://[fe80::a9fe:a9fe%25eth0]/ and Debian's urllib3 sends the zone
// unescaped, `Host: [fe80::a9fe:a9fe%eth0]`, which fasthttp reads as a bad
// percent escape.
//
// guestHost runs between fasthttp's header read and its URI parse
// (Server.HeaderReceived) and blanks a Host that the parse might refuse, so
// the URI is the request line's alone (its path, or an absolute form's
// authority, as before). The proxy never sends a guest's Host on
// (framing), so nothing downstream sees the difference. An absolute-form
// target whose authority the parse might refuse (the same zone,
// unescaped: GET http://[fe80::a9fe:a9fe%eth0]/…) is cut to its path and
// query, all the proxy sends on of it anyway (agentURI).
//
// What fasthttp refuses while reading the header, before any hook, is not
// reachable from here: a missing or empty Host on HTTP/1.1, a repeated
// Host, control bytes in it, `*` as a GET's target, more than one space
// (or a tab) between the request line's parts. haproxy forwards those;
// TestGuestHostsAsHAProxy lists each, so a fasthttp that changes shows.
func guestHost(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if !plainHost(h.Host()) {
		h.SetHostBytes(nil)
	}
	if uri := h.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		if path, ok := oddAuthority(uri); ok {
			h.SetRequestURIBytes(path)
		}
	}
	return fasthttp.RequestConfig{} // the server's own limits
}

// oddAuthority says whether uri is an absolute form whose authority is
// not plainHost, and returns its path and query ("/" when it has none).
func oddAuthority(uri []byte) (path []byte, ok bool) {
	i := bytes.Index(uri, []byte("://"))
	if i < 0 {
		return nil, false
	}
	rest := uri[i+3:]
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	if at := bytes.LastIndexByte(auth, '@'); at >= 0 {
		auth = auth[at+1:]
	}
	if plainHost(auth) {
		return nil, false
	}
	if end == len(rest) {
		return []byte("/"), true
	}
	if rest[end] == '?' {
		// "/"+query would allocate; such a target is rarer still.
		return append([]byte("/"), rest[end:]...), true
	}
	return rest[end:], true
}

// haproxyTarget says whether haproxy 2.6 takes target as a request-target:
// it refuses a '#' and any byte above 0x7e (fasthttp refuses controls and
// DEL itself), where fasthttp would let both through.
func haproxyTarget(target []byte) bool {
	for _, c := range target {
		if c == '#' || c > 0x7e {
			return false
		}
	}
	return true
}

// plainHost says whether host is a name or IPv4 address with an optional
// decimal port: the common shapes, which fasthttp's URI parse accepts. It
// is the hot path's one check (no allocation); anything else is blanked,
// whether fasthttp would have refused it or not.
func plainHost(host []byte) bool {
	colon := false
	for _, c := range host {
		switch {
		case c == ':':
			if colon {
				return false
			}
			colon = true
		case c >= '0' && c <= '9':
		case colon:
			return false // the port is digits only
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
