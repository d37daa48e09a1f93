package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/vmspec"
	"github.com/mdctl/mdctl/store"
)

// instanceShowOptions are instance show's: the record's, or how to attach
// a VM by hand for it (--libvirt, --qemu).
type instanceShowOptions struct {
	recordOptions
	Libvirt, QEMU bool
	DataDir       string // where serve keeps the config drives
	Version       string // mdctl's, the SMBIOS system version as nova gives its own
	Segment       string // this data dir's segment namespace (f.Dataplane)
}

func newCmdInstanceShow(f *factory, runF func(context.Context, *instanceShowOptions) error) *cobra.Command {
	opts := &instanceShowOptions{recordOptions: recordOptions{IO: f.IO, Store: f.OpenStore}}
	k := instanceKind()
	cmd := k.showHelp.command("show NAME|ID [--libvirt | --qemu]", exactArgs(1, k.oneRef()))
	cmd.ValidArgsFunction = completeNames(f, k.names)
	cmd.Long = `Show one instance with its project, ports and networks.

With --libvirt or --qemu, print how to attach a VM of your own to it by hand,
as nova's libvirt driver would boot it: one virtio NIC per port with the
port's MAC on a tap named for the port, on the port's network bridge; the
SMBIOS system record (manufacturer "OpenStack Foundation", product
"OpenStack Nova", serial and uuid the instance's uuid, family "Virtual
Machine"), without which cloud-init's ds-identify finds no datasource; and
the config drive serve keeps, when the instance has one. --libvirt gives a
domain fragment to merge (virsh edit), --qemu the QEMU arguments and the
commands that plug the taps in. A network on the operator's bridge
(network create --bridge) is reachable from the host; mdctl's own segment
lives in its namespace (` + dataplane.DefaultSegmentNamespace + ` for /var/lib/mdctl, else named
after --profile or the data dir).`
	cmd.Example = `  mdctl instance show vm1
  mdctl instance show vm1 --libvirt
  mdctl instance show vm1 --qemu`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts.Ref = args[0]
		opts.DataDir, opts.Version = f.DataDir, f.Version
		dp, err := f.Dataplane()
		if err != nil {
			return err
		}
		opts.Segment = dp.SegmentNamespace
		if opts.Libvirt && opts.QEMU {
			return usageErrorf("give --libvirt or --qemu, not both")
		}
		if !opts.Libvirt && !opts.QEMU {
			if err := checkOutput(opts.Output); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return k.showRun(cmd.Context(), &opts.recordOptions)
		}
		if cmd.Flags().Changed("output") {
			return usageErrorf("--libvirt and --qemu print text; -o does not apply")
		}
		return runOrTest(cmd, opts, runF, instanceAttachRun)
	}
	addOutputFlag(cmd, &opts.Output)
	fl := cmd.Flags()
	fl.BoolVar(&opts.Libvirt, "libvirt", false, "print a libvirt domain fragment that attaches a VM to this instance's ports")
	fl.BoolVar(&opts.QEMU, "qemu", false, "print the QEMU arguments that attach a VM to this instance's ports")
	return cmd
}

// instanceAttachRun prints the instance's vmspec.Spec for libvirt or QEMU,
// with notes on what the operator must still do.
func instanceAttachRun(ctx context.Context, opts *instanceShowOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		view, snap, err := instanceWithSettings(ctx, st, opts.Ref)
		if err != nil {
			return err
		}
		var drive *vmspec.Disk
		if server.NeedsConfigDrive(view.Instance, snap.Config) {
			dir := filepath.Join(opts.DataDir, server.ConfigDrivesDirName)
			format := snap.Config.ConfigDriveFormat
			drive = &vmspec.Disk{Path: server.ConfigDrivePath(dir, view.Instance.ID, format), Format: format}
		}
		spec := vmspec.FromView(view, opts.Version, drive)
		w := opts.IO.Out
		notes := attachNotes(view, spec, opts.Segment)
		if opts.Libvirt {
			fmt.Fprintf(w, "<!-- instance %s (%s), as nova's libvirt driver would boot it.\n", view.Instance.Name, view.Instance.ID)
			for _, n := range notes {
				fmt.Fprintf(w, "     %s\n", strings.ReplaceAll(n, "--", "-")) // no "--" inside an XML comment
			}
			fmt.Fprint(w, "-->\n", spec.LibvirtXML())
			return nil
		}
		for _, n := range notes {
			fmt.Fprintf(w, "# %s\n", n)
		}
		printQEMU(w, spec, view, opts.Segment)
		return nil
	})
}

// attachNotes says, per NIC, where its bridge is, and what else the
// operator must know: the lab and the binding, the config drive.
func attachNotes(v store.InstanceView, spec vmspec.Spec, seg string) []string {
	var notes []string
	for i, p := range v.Ports {
		n := spec.NICs[i]
		where := "the operator's bridge, in the host namespace"
		if _, onHost := dataplane.NetworkBridge(p.Network); !onHost {
			where = "mdctl's own segment in namespace " + seg +
				"; libvirt cannot plug a tap there: put the network on the operator's bridge (bridge: in the topology)"
		} else if p.Network.VLAN != 0 {
			where = fmt.Sprintf("mdctl's bridge for VLAN %d of %s, in the host namespace", p.Network.VLAN, p.Network.Bridge)
		}
		notes = append(notes, fmt.Sprintf("NIC %d: port %s on network %s: MAC %s, tap %s on %s (%s).", i, p.Port.ID, p.Network.Name, n.MAC, n.Tap, n.Bridge, where))
		if p.Port.BindingHostID == "" {
			notes = append(notes, fmt.Sprintf("  Port %s is not bound to a host: mdctl lab up will not touch it while its tap exists, but bind it (host: in the topology, or instance create --host) so lab down and lab status know it is a VM's.", p.Port.ID))
		}
	}
	if spec.ConfigDrive != nil {
		notes = append(notes, fmt.Sprintf("Config drive (%s): %s, kept up to date by mdctl serve (or: mdctl configdrive build %s FILE).", spec.ConfigDrive.Format, spec.ConfigDrive.Path, v.Instance.Name))
	}
	return notes
}

// printQEMU writes the command line, one option per line, shell-quoted,
// and the commands that plug each tap into its bridge. A tap for mdctl's
// own segment is moved into the segment namespace first: a tap keeps
// working for QEMU in another namespace.
func printQEMU(w io.Writer, spec vmspec.Spec, v store.InstanceView, seg string) {
	fmt.Fprintln(w, "qemu-system-x86_64 -machine pc -m 1024 -nographic \\")
	args := spec.QEMUArgs()
	for i := 0; i < len(args); i += 2 {
		fmt.Fprintf(w, "  %s %s \\\n", args[i], shellQuote(args[i+1]))
	}
	fmt.Fprintln(w, "  -drive file=YOUR-IMAGE.qcow2,if=virtio &")
	fmt.Fprintln(w, "# once QEMU has made the taps, plug each into its bridge:")
	for i, n := range spec.NICs {
		if _, onHost := dataplane.NetworkBridge(v.Ports[i].Network); onHost {
			fmt.Fprintf(w, "ip link set %s master %s up\n", n.Tap, n.Bridge)
			continue
		}
		fmt.Fprintf(w, "ip link set %s netns %s && ip netns exec %s ip link set %s master %s up\n", n.Tap, seg, seg, n.Tap, n.Bridge)
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`&;|<>()*?[]#~!{}") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
