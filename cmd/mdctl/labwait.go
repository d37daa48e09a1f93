package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
)

// lab up right after `mdctl serve &` finds serve still starting: its
// dnsmasqs come with its first data-plane pass. Without waiting, every
// guest would fall back to static routes, and a switch would never reach
// it on the "next lease renewal".

const (
	// serveDHCPWait bounds lab up's wait for serve's DHCP servers.
	serveDHCPWait = 30 * time.Second
	// listenGrace is how long a network's DHCP server may take to listen
	// once serve says all it planned run: a network serve does not host
	// (another node's) never will.
	listenGrace = 2 * time.Second
	pollServe   = 100 * time.Millisecond
	// serveStartGrace is how long lab up gives a serve started along with
	// it (`mdctl serve & mdctl lab up`) to take its data dir's lock before
	// it concludes that none runs: lab up can get here first.
	serveStartGrace = 2 * time.Second
)

// serveDHCPWaiter is lab up's dataplane.Options.AwaitDHCP: it waits,
// bounded by serveDHCPWait, until serve on dataDir runs the DHCP servers it
// planned (admin /status) and those of the guests' networks listen,
// saying so once on out. Without a serve it says that in one line and
// returns false at once.
type serveDHCPWaiter struct {
	dataDir string
	out     io.Writer
}

func (s *serveDHCPWaiter) AwaitDHCP(ctx context.Context, guests []dataplane.Guest) bool {
	w := serveWait{dataDir: s.dataDir, out: s.out, nets: guestNetworks(guests)}
	return w.run(ctx)
}

// network is one network a guest wants a lease on.
type network struct{ id, name string }

func guestNetworks(guests []dataplane.Guest) []network {
	var nets []network
	for _, g := range guests {
		n := network{g.NetworkID, cmp.Or(g.NetworkName, g.NetworkID)}
		if !slices.Contains(nets, n) {
			nets = append(nets, n)
		}
	}
	return nets
}

type serveWait struct {
	dataDir string
	out     io.Writer
	nets    []network
	said    bool      // the "waiting" line is out
	readyAt time.Time // when serve first said all its DHCP servers run
}

func (w *serveWait) run(ctx context.Context) bool {
	if !w.serveStarts(ctx) {
		fmt.Fprintf(w.out, "no mdctl serve runs on data dir %s: lab guests get static routes (start mdctl serve, then lab up again, for DHCP leases)\n", w.dataDir)
		return false
	}
	c, err := admin.NewClient(filepath.Join(w.dataDir, admin.SocketName))
	if err != nil {
		return true // the guests find out one by one
	}
	start := time.Now()
	deadline := start.Add(serveDHCPWait)
	for {
		st, err := serveStatus(ctx, c)
		if err == nil && st.Dataplane == nil {
			fmt.Fprintf(w.out, "mdctl serve on data dir %s runs no proxy component, so no DHCP server: lab guests get static routes\n", w.dataDir)
			return false
		}
		pending := w.pending(st, err)
		if len(pending) == 0 {
			return true
		}
		if !server.DataDirLocked(w.dataDir) {
			fmt.Fprintf(w.out, "mdctl serve on data dir %s stopped: lab guests get static routes\n", w.dataDir)
			return false
		}
		if !w.said {
			fmt.Fprintf(w.out, "waiting for serve's DHCP %s on %s …\n", plural(len(pending), "server", "servers"), strings.Join(pending, ", "))
			w.said = true
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(w.out, "serve's DHCP %s on %s did not answer within %v: those guests get static routes\n",
				plural(len(pending), "server", "servers"), strings.Join(pending, ", "), serveDHCPWait)
			return true
		}
		select {
		case <-ctx.Done():
			return true
		case <-time.After(pollServe):
		}
	}
}

// serveStarts reports whether a serve holds the data dir's lock, or takes
// it within serveStartGrace.
func (w *serveWait) serveStarts(ctx context.Context) bool {
	for end := time.Now().Add(serveStartGrace); ; {
		if server.DataDirLocked(w.dataDir) {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pollServe):
		}
	}
}

// pending is the networks whose DHCP server is still to come: all that do
// not listen while serve is not ready (it does not answer yet, or runs
// fewer DHCP servers than it planned), then those that do not listen
// within listenGrace.
func (w *serveWait) pending(st admin.Status, stErr error) []string {
	var out []string
	for _, n := range w.nets {
		if !dataplane.DHCPServerListening(n.id) {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 || stErr != nil || !st.DHCPReady() {
		return out
	}
	if w.readyAt.IsZero() {
		w.readyAt = time.Now()
	}
	if time.Since(w.readyAt) > listenGrace {
		return nil // not this serve's to serve: those guests say so themselves
	}
	return out
}

func serveStatus(ctx context.Context, c *admin.Client) (admin.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return c.Status(ctx)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
