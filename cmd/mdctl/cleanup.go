package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
)

// cleanup is mdctl's neutron-netns-cleanup: it removes what serve and the
// lab made in the kernel, and nothing it did not make.

type cleanupOptions struct {
	IO        *iostreams
	DataDir   string
	Dataplane dataplane.Options
	Force     bool
}

func newCmdCleanup(f *factory, runF func(context.Context, *cleanupOptions) error) *cobra.Command {
	opts := &cleanupOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove the namespaces, links and rules mdctl made (lab guests included)",
		Long: `Cleanup removes every lab guest and every namespace, bridge, veth and
iptables rule this data dir's mdctl made (qrouter-…, qdhcp-… and the
segment namespace carrying its owner mark; see --profile), and the taps,
VLAN links and brq bridges it put on the host for networks on the
operator's L2. Namespaces another tool or another mdctl (another data dir
or profile) made, the operator's bridges and whatever else is on them (a
VM's tap included) are never touched. The store is kept: the next mdctl
serve builds it all again.`,
		Example: "  mdctl cleanup\n  mdctl cleanup --force   # even while serve seems to run",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.DataDir = f.DataDir
			var err error
			if opts.Dataplane, err = f.Dataplane(); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, cleanupRun)
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "clean up even when a serve answers on the agent socket")
	return cmd
}

func cleanupRun(ctx context.Context, opts *cleanupOptions) error {
	if !opts.Force && serveRunning(opts.DataDir) {
		return errors.New("mdctl serve is running on this data dir and would rebuild it all; stop it first (or --force)")
	}
	// Lab VMs first: their taps are in the segment namespace Teardown removes.
	if err := server.LabVMDown(opts.DataDir); err != nil {
		return fmt.Errorf("cleanup: lab VMs: %w", err)
	}
	if err := dataplane.LabDown(ctx, opts.Dataplane); err != nil {
		return fmt.Errorf("cleanup: lab guests: %w", err)
	}
	if err := dataplane.NewReconciler(opts.Dataplane).Teardown(ctx); err != nil {
		return fmt.Errorf("cleanup: data plane: %w", err)
	}
	fmt.Fprintln(opts.IO.Out, "removed mdctl's lab VMs, lab guests, namespaces, links and rules")
	return nil
}

// serveRunning reports whether a serve holds the data dir, or an agent
// answers on its socket.
func serveRunning(dataDir string) bool {
	if server.DataDirLocked(dataDir) {
		return true
	}
	c, err := net.DialTimeout("unix", filepath.Join(dataDir, server.AgentSocketName), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
