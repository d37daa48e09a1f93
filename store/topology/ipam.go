package topology

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
)

// lastAddr returns the last address of p (the broadcast address for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	host := len(b)*8 - p.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// maxScan bounds the search for a free address so a huge IPv6 subnet with
// a crowded start cannot loop for long.
const maxScan = 1 << 16

// nextFree returns the lowest usable host address of p not in used,
// skipping the network address and, for IPv4, the broadcast address.
func nextFree(p netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	last := lastAddr(p)
	a := p.Masked().Addr().Next()
	for i := 0; i < maxScan && a.IsValid() && p.Contains(a); i, a = i+1, a.Next() {
		if a.Is4() && a == last {
			break
		}
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address left in %s", p)
}

// eui64 returns the SLAAC address a guest with mac builds in p (RFC 4291
// appendix A), as neutron computes it for slaac and dhcpv6-stateless subnets.
func eui64(p netip.Prefix, mac string) (netip.Addr, error) {
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return netip.Addr{}, fmt.Errorf("bad MAC %q", mac)
	}
	b := p.Masked().Addr().As16()
	b[8], b[9], b[10] = hw[0]^0x02, hw[1], hw[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = hw[3], hw[4], hw[5]
	return netip.AddrFrom16(b), nil
}

// usesSLAAC reports whether guests on an IPv6 subnet pick their own address.
func usesSLAAC(mode string) bool { return mode == "slaac" || mode == "dhcpv6-stateless" }

// randomMAC returns a MAC in neutron's default base_mac fa:16:3e:00:00:00.
func randomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
}

// newProjectID returns a keystone-style project ID: 32 lowercase hex digits.
func newProjectID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var (
	hostSepRe = regexp.MustCompile(`[ _.]`)
)

// SanitizeHostname turns a display name into a hostname exactly as nova's
// utils.sanitize_hostname does: drop characters beyond Latin-1, cut to 63
// characters, turn spaces, underscores and dots into '-', drop anything
// that is not a word character or '-', lowercase, trim '-' at the ends.
// An empty result becomes defaultName (nova uses "Server-<uuid>").
func SanitizeHostname(name, defaultName string) string {
	var kept []rune
	for _, r := range name {
		if r <= 0xff {
			kept = append(kept, r)
		}
	}
	h := string(truncate63(kept))
	h = hostSepRe.ReplaceAllString(h, "-")
	h = strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) {
			return r
		}
		return -1
	}, h)
	h = strings.ToLower(h)
	h = strings.Trim(h, ".-")
	if h == "" && defaultName != "" {
		return string(truncate63([]rune(defaultName)))
	}
	return h
}

func truncate63(r []rune) []rune {
	if len(r) > 63 {
		return r[:63]
	}
	return r
}
