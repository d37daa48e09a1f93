package proxy

import (
	"fmt"
	"net"
	"net/http"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// The proxy's part in session tokens (AWS IMDSv2; the API mints and
// checks them, server/api/tokens.go): it sees the guest's own headers and
// owns the guest's socket, so it refuses a token PUT that carries
// X-Forwarded-For (a proxy inside the guest fetching one for someone
// else, as AWS refuses it) and sends a token's answer with IP TTL / hop
// limit metadata_token_hop_limit, so it dies after that many hops: a
// container NATed behind the guest never gets it.

// isTokenPut says whether the request asks for a token.
func isTokenPut(ctx *fasthttp.RequestCtx) bool {
	return ctx.IsPut() && metadata.IsTokenPath(string(ctx.Path()))
}

// forwardedPut refuses a token PUT that carries X-Forwarded-For, in any
// spelling, with 403; it reports whether it did.
func (p *Proxy) forwardedPut(ctx *fasthttp.RequestCtx, id Identity) bool {
	found := false
	for k := range ctx.Request.Header.All() {
		if isXFF(k) {
			found = true
			break
		}
	}
	if !found {
		return false
	}
	p.refused(ctx, id, http.StatusForbidden, fmt.Errorf("token PUT with X-Forwarded-For"))
	haproxyError(ctx, http.StatusForbidden)
	return true
}

// isXFF compares a name with X-Forwarded-For, case-insensitively and
// with '_' as '-'.
func isXFF(k []byte) bool {
	const want = "x-forwarded-for"
	if len(k) != len(want) {
		return false
	}
	for i := range k {
		c := k[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// tokenHops sends a token's answer with the hop limit in force, and ends
// the connection after it, so no later answer leaves with that limit.
func (p *Proxy) tokenHops(ctx *fasthttp.RequestCtx, snap *store.Snapshot) {
	hops := p.defaults.MetadataTokenHopLimit
	if snap != nil {
		hops = snap.Config.MetadataTokenHopLimit
	}
	hops = min(hops, 255)
	if err := setHopLimit(ctx.Conn(), hops); err != nil {
		// Not sending the token is safer than sending it further.
		p.log.Error("token answer: set hop limit; answering 500 instead", "hops", hops, "err", err)
		haproxyError(ctx, http.StatusInternalServerError)
		return
	}
	ctx.SetConnectionClose()
}

// setHopLimit sets the IP TTL (IPv4) or unicast hop limit (IPv6) of the
// guest's socket.
func setHopLimit(c net.Conn, hops int) error {
	rc := rawConn(c)
	if rc == nil {
		return fmt.Errorf("no socket under %T", c)
	}
	level, opt := unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok && la.IP.To4() != nil {
		level, opt = unix.IPPROTO_IP, unix.IP_TTL
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, hops) }); err != nil {
		return err
	}
	return serr
}
