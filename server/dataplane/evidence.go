package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// What stands in for a guest the tracer cannot enter (a real VM): what
// mdctl's DHCP server told it and what the L2 saw of it. Read-only.

// Lease is one line of dnsmasq's lease file.
type Lease struct {
	Expires  time.Time // zero: infinite
	MAC      string
	IP       string
	Hostname string
}

// DHCPLease finds the lease the network's dnsmasq gave mac; ok false when
// there is none (or no lease file: no server ran).
func (o Options) DHCPLease(networkID, mac string) (l Lease, ok bool, err error) {
	want, err := net.ParseMAC(mac)
	if err != nil {
		return Lease{}, false, fmt.Errorf("MAC %q: %w", mac, err)
	}
	f, err := os.Open(filepath.Join(o.DHCPStateDir(), networkID, "leases"))
	if errors.Is(err, os.ErrNotExist) {
		return Lease{}, false, nil
	}
	if err != nil {
		return Lease{}, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// <expiry epoch> <mac> <ip> <hostname|*> <client id|*>
		fs := strings.Fields(sc.Text())
		if len(fs) < 4 {
			continue
		}
		if hw, err := net.ParseMAC(fs[1]); err != nil || hw.String() != want.String() {
			continue
		}
		l = Lease{MAC: want.String(), IP: fs[2], Hostname: strings.TrimPrefix(fs[3], "*")}
		if sec, err := strconv.ParseInt(fs[0], 10, 64); err == nil && sec > 0 {
			l.Expires = time.Unix(sec, 0)
		}
		ok = true
	}
	return l, ok, sc.Err()
}

// DHCPServedRoutes is the classless static routes (option 121) the
// network's dnsmasq hands the subnet's guests, as its opts file holds them
// ("dst,via,dst,via…"); "" when it hands none.
func (o Options) DHCPServedRoutes(networkID, subnetID string) (string, error) {
	b, err := os.ReadFile(filepath.Join(o.DHCPStateDir(), networkID, "opts"))
	if err != nil {
		return "", err
	}
	prefix := "tag:" + subnetTagPrefix + subnetID + ",option:classless-static-route,"
	for _, line := range strings.Split(string(b), "\n") {
		if r, ok := strings.CutPrefix(line, prefix); ok {
			return r, nil
		}
	}
	return "", nil
}

// Neighbour is a neighbour (ARP) entry.
type Neighbour struct {
	MAC   string
	State string // REACHABLE, STALE, FAILED, …
}

// NeighbourOf is the entry for ip on dev inside ns; ok false when the
// kernel has none.
func NeighbourOf(nsName, dev, ip string) (nb Neighbour, ok bool, err error) {
	want := net.ParseIP(ip)
	if want == nil {
		return Neighbour{}, false, fmt.Errorf("bad address %q", ip)
	}
	n, err := openNS(nsName)
	if err != nil {
		return Neighbour{}, false, err
	}
	defer n.Close()
	l, err := n.linkByName(dev)
	if err != nil || l == nil {
		return Neighbour{}, false, fmt.Errorf("%s: no link %s: %v", nsName, dev, err)
	}
	neighs, err := n.h.NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return Neighbour{}, false, fmt.Errorf("%s: neighbours of %s: %w", nsName, dev, err)
	}
	for _, e := range neighs {
		if e.IP.Equal(want) && e.HardwareAddr != nil {
			return Neighbour{MAC: e.HardwareAddr.String(), State: neighState(e.State)}, true, nil
		}
	}
	return Neighbour{}, false, nil
}

func neighState(s int) string {
	switch s {
	case netlink.NUD_REACHABLE:
		return "REACHABLE"
	case netlink.NUD_STALE:
		return "STALE"
	case netlink.NUD_DELAY:
		return "DELAY"
	case netlink.NUD_PROBE:
		return "PROBE"
	case netlink.NUD_FAILED:
		return "FAILED"
	case netlink.NUD_PERMANENT:
		return "PERMANENT"
	case netlink.NUD_INCOMPLETE:
		return "INCOMPLETE"
	}
	return strconv.Itoa(s)
}
