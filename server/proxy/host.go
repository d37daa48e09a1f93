package proxy

import "github.com/valyala/fasthttp"

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
// (framing), so nothing downstream sees the difference.
//
// What fasthttp refuses while reading the header, before any hook, is not
// reachable from here: a missing or empty Host on HTTP/1.1, a repeated
// Host, control bytes in it, `*` as a GET's target. haproxy forwards
// those; TestGuestHostsAsHAProxy lists each, so a fasthttp that changes
// shows.
func guestHost(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if !plainHost(h.Host()) {
		h.SetHostBytes(nil)
	}
	return fasthttp.RequestConfig{} // the server's own limits
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
