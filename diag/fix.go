package diag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// SocketMode is the agent socket's mode Fix restores (the agent's default).
const SocketMode os.FileMode = 0o660

// Fix repairs what mdctl owns and r found broken, after writing to out
// what it is about to do: it re-applies the planned data plane (namespaces,
// veths, addresses, iptables rules), rebuilds the traced instance's lab guest (no other) when the
// guest's route is wrong, and restores the agent socket's mode. Settings,
// other software's rules and stopped processes are left to the operator:
// their hints say what to run. A healthy report changes nothing.
func Fix(ctx context.Context, o Options, r Report, out io.Writer) error {
	if r.Error != "" {
		fmt.Fprintf(out, "nothing to fix from here: %s\n", r.Error)
		return nil
	}
	if r.OK {
		fmt.Fprintln(out, "every hop passed: nothing to fix")
		return nil
	}
	stored, err := o.Store.Settings(ctx)
	if err != nil {
		return fmt.Errorf("fix: read settings: %w", err)
	}
	cfg, err := store.ParseConfig(stored, o.Overrides)
	if err != nil {
		return fmt.Errorf("fix: settings: %w", err)
	}
	o = o.withDefaults(cfg)
	var errs error
	failed := func(name string) bool { h := r.Hop(name); return h.Name != "" && !h.OK && !h.NotChecked }

	remote := r.Host != "" && r.Host != r.Node
	kernelFailed := failed(HopNamespace) || failed(HopIPTables) || failed(HopProxy)
	if kernelFailed && remote {
		// Its namespaces are another machine's: re-applying here would
		// build them on the wrong one.
		fmt.Fprintf(out, "left to node %s (it hosts the %s namespace): run mdctl trace %s --fix there\n", r.Host, r.Mode, r.Instance)
	}
	if kernelFailed && !remote {
		d, err := server.PlanFromStore(ctx, o.Store, cfg)
		if err != nil {
			return fmt.Errorf("fix: plan: %w", err)
		}
		fmt.Fprintf(out, "re-applying the data plane: %d router and %d DHCP namespaces with their interfaces, addresses and metadata rules (serve's proxies follow a recreated namespace on their next poll)\n", len(d.Routers), len(d.DHCP))
		if err := dataplane.NewReconciler(o.Dataplane).Apply(ctx, d); err != nil {
			errs = errors.Join(errs, fmt.Errorf("fix: apply data plane: %w", err))
		}
		if h := r.Hop(HopIPTables); !h.OK && strings.Contains(h.Detail, "ahead of mdctl") {
			fmt.Fprintf(out, "left to you (iptables): a rule mdctl does not own comes first: %s\n", h.Detail)
		}
	}
	if failed(HopRoute) && r.Mode != ModeNone && labGuestTraced(r) {
		guests, err := server.LabGuests(ctx, o.Store, cfg)
		if err != nil {
			return errors.Join(errs, fmt.Errorf("fix: lab guests: %w", err))
		}
		guests = slices.DeleteFunc(guests, func(g dataplane.Guest) bool { return g.InstanceID != r.InstanceID })
		fmt.Fprintf(out, "rebuilding %s's lab guest (%d ports) with the routes DHCP gives it; other guests are left as they are\n", r.Instance, len(guests))
		if err := dataplane.LabRepair(ctx, o.Dataplane, guests); err != nil {
			errs = errors.Join(errs, fmt.Errorf("fix: lab up: %w", err))
		}
	}
	if failed(HopSocket) {
		sock := filepath.Join(o.DataDir, server.AgentSocketName)
		fi, err := os.Stat(sock)
		switch {
		case err == nil && fi.Mode()&os.ModeSocket != 0 && fi.Mode().Perm()&0o600 != 0o600:
			fmt.Fprintf(out, "chmod %#o %s (was %#o)\n", SocketMode, sock, fi.Mode().Perm())
			if err := os.Chmod(sock, SocketMode); err != nil {
				errs = errors.Join(errs, fmt.Errorf("fix: chmod %s: %w", sock, err))
			}
		default:
			fmt.Fprintf(out, "not fixing the socket: %s\n", r.Hop(HopSocket).Hint)
		}
	}
	for _, h := range r.Hops {
		if h.NotChecked {
			fmt.Fprintf(out, "not checked (%s), nothing to fix: %s\n", h.Name, h.Hint)
			continue
		}
		if h.OK || h.Name == HopNamespace || h.Name == HopIPTables || h.Name == HopSocket || h.Name == HopProxy {
			continue
		}
		if h.Name == HopRoute && r.Mode != ModeNone && labGuestTraced(r) {
			continue
		}
		if h.bySetting {
			fmt.Fprintf(out, "left to you (%s): only a setting fixes this, and settings are the operator's to change (--fix never changes them): %s\n", h.Name, h.Hint)
			continue
		}
		fmt.Fprintf(out, "left to you (%s): %s\n", h.Name, h.Hint)
	}
	return errs
}

// labGuestTraced reports whether the route hop looked into a lab guest.
func labGuestTraced(r Report) bool {
	for _, e := range r.Hop(HopRoute).Evidence {
		if strings.HasPrefix(e, "guest namespace ") {
			return true
		}
	}
	return false
}
