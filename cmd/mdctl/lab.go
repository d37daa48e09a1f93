package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// The lab's wiring: the store says which guests exist, server.LabGuests
// plans their routes and dataplane builds them.

func newCmdLab(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Simulated guests (one network namespace per instance port) and real QEMU VMs",
		Long: `The lab stands in for VMs: every instance port gets a network namespace whose
eth0 carries the port's MAC and addresses, plugged into its network's segment,
with the routes DHCP would push (169.254.169.254 via the router or the DHCP
port). Run mdctl serve beside it and the guests reach metadata exactly as VMs
would. With lab up --image, instances boot as real QEMU VMs instead, with the
real cloud-init of their image; lab console shows their serial console.`,
		Example: `  mdctl lab up
  mdctl lab up --image disk.qcow2 --kernel vmlinuz --initrd initrd.img vm1
  mdctl lab console vm1 -f
  mdctl lab exec vm1 -- curl -s http://169.254.169.254/openstack/latest/meta_data.json
  mdctl lab status
  mdctl lab down`,
	}
	cmd.AddCommand(newCmdLabUp(f, nil), newCmdLabDown(f, nil), newCmdLabStatus(f, nil), newCmdLabExec(f, nil), newCmdLabConsole(f, nil))
	return cmd
}

type labOptions struct {
	IO        *iostreams
	Store     func(context.Context) (store.Store, error)
	Dataplane dataplane.Options
	Output    string
	Instance  string
	Port      int
	Argv      []string
	// DataDir holds the lab VMs (read when the command runs: --data-dir).
	DataDir func() string
	VM      labVMFlags
	Follow  bool
}

func newLabOptions(f *factory) *labOptions {
	return &labOptions{IO: f.IO, Store: f.OpenStore, DataDir: func() string { return f.DataDir }, VM: labVMFlags{Version: f.Version}}
}

// name fills in which guests and segment are this data dir's; flags are
// parsed by then.
func (o *labOptions) name(f *factory) error {
	dp, err := f.Dataplane()
	o.Dataplane.SegmentNamespace, o.Dataplane.GuestPrefix = dp.SegmentNamespace, dp.GuestPrefix
	o.Dataplane.Logger = f.Logger(f.IO.ErrOut, slog.LevelWarn)
	return err
}

// labGuests reads the store and plans every guest.
func labGuests(ctx context.Context, opts *labOptions) ([]dataplane.Guest, error) {
	var guests []dataplane.Guest
	err := withStoreFn(ctx, opts.Store, func(st store.Store) error {
		snap, err := store.NewLive(st, nil).Snapshot(ctx)
		if err != nil {
			return err
		}
		guests, err = server.LabGuests(ctx, st, snap.Config)
		return err
	})
	return guests, err
}

func newCmdLabUp(f *factory, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := newLabOptions(f)
	var routes string
	cmd := &cobra.Command{
		Use:   "up [--image FILE [--kernel F --initrd F --append ARGS]] [INSTANCE...]",
		Short: "Create or update a guest namespace for every instance port, or boot instances as QEMU VMs",
		Long: `Up builds a namespace per instance port. With mdctl serve running, each guest
takes its address and routes from a real DHCP lease (dnsmasq in the network's
qdhcp namespace, option 121 as neutron writes it; dhclient in the guest), so a
switch such as force_metadata reaches it on the next renewal. Run right after
mdctl serve &, it waits (up to 30s, saying so once) until serve's DHCP servers
answer: serve's admin status says how many it planned. Without a DHCP client,
or without serve (lab up says so once), guests get the same routes statically.

With --image, the INSTANCEs (all instances when none is named) boot as real
QEMU VMs instead: a copy-on-write overlay on the image (never written), one
virtio NIC per port with the port's MAC on its network's bridge, SMBIOS as
nova sets it (OpenStack Nova, the instance uuid), and the config drive when
the instance has config_drive or force_config_drive is set. KVM when a probe
boot proves it works (the verdict is cached in ` + server.DefaultAccelCache + `), TCG
otherwise. Each VM's files (console.log, qemu.pid, the overlay) are in
<data-dir>/lab-vms/<instance uuid>. The other instances stay namespace guests.`,
		Example: `  mdctl lab up
  mdctl lab up --routes static
  mdctl lab up --image debian-12-genericcloud-amd64.qcow2 vm1
  mdctl lab up --image disk.qcow2 --kernel vmlinuz --initrd initrd.img --append "root=/dev/vda rw console=ttyS0" vm1 vm2
  mdctl lab up -o json`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && opts.VM.Image == "" {
				return usageErrorf("INSTANCE arguments need --image: they name the instances to boot as VMs")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Instance, opts.Argv = "", args
			if err := opts.name(f); err != nil {
				return err
			}
			if err := opts.VM.check(); err != nil {
				return err
			}
			if err := checkOutput(opts.Output); err != nil {
				return err
			}
			if routes != dataplane.GuestRoutesDHCP && routes != dataplane.GuestRoutesStatic {
				return usageErrorf("--routes %q: use %s or %s", routes, dataplane.GuestRoutesDHCP, dataplane.GuestRoutesStatic)
			}
			opts.Dataplane.GuestRoutes = routes
			return runOrTest(cmd, opts, runF, labUpRun)
		},
	}
	cmd.Flags().StringVar(&routes, "routes", dataplane.GuestRoutesDHCP, "how guests get their routes: dhcp (a real lease, static when none can be had) or static")
	_ = cmd.RegisterFlagCompletionFunc("routes", completeRoutes)
	opts.VM.addFlags(cmd)
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func labUpRun(ctx context.Context, opts *labOptions) error {
	// Warnings (no DHCP client, no lease: static routes instead) reach the operator.
	if opts.Dataplane.Logger == nil {
		opts.Dataplane.Logger = slog.New(slog.NewTextHandler(opts.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// Right after `mdctl serve &`, its DHCP servers are still to come.
	if opts.Dataplane.AwaitDHCP == nil {
		opts.Dataplane.AwaitDHCP = &serveDHCPWaiter{dataDir: opts.DataDir(), out: opts.IO.ErrOut}
	}
	guests, err := labGuests(ctx, opts)
	if err != nil {
		return err
	}
	boot, err := labVMsToBoot(opts, guests)
	if err != nil {
		return err
	}
	// Namespace guests for everything that is not a VM; LabUp removes the
	// namespace of an instance that becomes one, freeing its tap's name.
	nsGuests := withoutInstances(guests, labVMInstances(opts, boot))
	if err := dataplane.LabUp(ctx, opts.Dataplane, nsGuests); err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	vms, err := labVMsUp(ctx, opts, boot)
	rows := guestRows(opts, nsGuests)
	for _, v := range vms {
		rows = append(rows, vmRow(v, true))
	}
	return errors.Join(err, printGuestRows(opts, rows))
}

// guestRow is what lab up and lab status print per guest.
type guestRow struct {
	Instance  string   `json:"instance" yaml:"instance"`
	Namespace string   `json:"namespace" yaml:"namespace"`
	MAC       string   `json:"mac" yaml:"mac"`
	Addresses []string `json:"addresses" yaml:"addresses"`
	Metadata  string   `json:"metadata_via" yaml:"metadata_via"` // "router 10.90.1.1", "dhcp 10.90.2.2", "none"
	// External says why a VM outside the lab plays the port (bound to a
	// host, or its tap is a VM's); the lab leaves it alone.
	External string   `json:"external,omitempty" yaml:"external,omitempty"`
	OK       bool     `json:"ok" yaml:"ok"`
	Problems []string `json:"problems,omitempty" yaml:"problems,omitempty"`
	Kind     string   `json:"kind" yaml:"kind"` // "namespace" or "vm"
	VM       *vmInfo  `json:"vm,omitempty" yaml:"vm,omitempty"`
}

func rowFor(opts *labOptions, g dataplane.Guest) guestRow {
	via := g.Via()
	return guestRow{
		Instance: g.InstanceName, Namespace: dataplane.GuestNamespace(opts.Dataplane.GuestPrefix, g),
		MAC: g.MAC, Addresses: g.Addrs, Metadata: via, OK: true, Kind: kindNamespace,
	}
}

func guestRows(opts *labOptions, guests []dataplane.Guest) []guestRow {
	rows := make([]guestRow, 0, len(guests))
	for _, g := range guests {
		r := rowFor(opts, g)
		if r.External = dataplane.ExternalWhy(opts.Dataplane, g); r.External != "" {
			r.Namespace = "-"
		}
		rows = append(rows, r)
	}
	return rows
}

func printGuestRows(opts *labOptions, rows []guestRow) error {
	if opts.Output != "table" {
		return printData(opts.IO.Out, opts.Output, rows)
	}
	var vms []guestRow
	t := newTable(opts.IO.Out, "INSTANCE", "NAMESPACE", "MAC", "ADDRESSES", "METADATA VIA", "STATE")
	for _, r := range rows {
		if r.Kind == kindVM {
			vms = append(vms, r)
			continue
		}
		state := "ok"
		switch {
		case r.External != "":
			state = "external: " + r.External
		case !r.OK:
			state = strings.Join(r.Problems, "; ")
		}
		t.row(r.Instance, r.Namespace, r.MAC, strings.Join(r.Addresses, ","), r.Metadata, state)
	}
	if len(vms) == 0 {
		return t.flush()
	}
	if len(vms) < len(rows) {
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(opts.IO.Out)
	}
	return printVMRows(opts, vms)
}

func newCmdLabDown(f *factory, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := newLabOptions(f)
	return &cobra.Command{
		Use:     "down",
		Short:   "Power off every lab VM and remove every lab guest namespace",
		Example: "  mdctl lab down",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.name(f); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, labDownRun)
		},
	}
}

func labDownRun(ctx context.Context, opts *labOptions) error {
	if err := server.LabVMDown(opts.DataDir()); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	if err := dataplane.LabDown(ctx, opts.Dataplane); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	fmt.Fprintln(opts.IO.Out, "lab guests removed")
	return nil
}

func newCmdLabStatus(f *factory, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := newLabOptions(f)
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Show each guest and VM, whether it is wired as lab up wires it, and cloud-init's progress in each VM (exit 1 on a problem)",
		Example: "  mdctl lab status\n  mdctl lab status -o json",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.name(f); err != nil {
				return err
			}
			return checkOutputAndRun(cmd, opts.Output, opts, runF, labStatusRun)
		},
	}
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

func labStatusRun(ctx context.Context, opts *labOptions) error {
	guests, err := labGuests(ctx, opts)
	if err != nil {
		return err
	}
	vms, err := server.LabVMs(opts.DataDir())
	if err != nil {
		return fmt.Errorf("lab status: %w", err)
	}
	sts, err := dataplane.LabStatus(ctx, opts.Dataplane, withoutInstances(guests, vmInstanceIDs(vms)))
	if err != nil {
		return fmt.Errorf("lab status: %w", err)
	}
	rows := make([]guestRow, 0, len(sts)+len(vms))
	bad := 0
	for _, s := range sts {
		r := rowFor(opts, s.Guest)
		r.Namespace = s.Namespace
		switch {
		case s.External != "":
			r.Namespace, r.External = "-", s.External
		case s.Stray:
			r.Instance, r.Problems = "-", []string{"stray: no instance wants it (mdctl lab up removes it)"}
		case !s.Exists:
			r.Problems = []string{"missing: run mdctl lab up"}
		default:
			r.Problems = s.Problems
		}
		r.OK = s.OK()
		if !r.OK {
			bad++
		}
		rows = append(rows, r)
	}
	recent := recentRequests(ctx, opts.DataDir())
	for _, v := range vms {
		r := vmRow(v, false)
		r.VM.Requests = recent(v.InstanceID)
		if !r.OK {
			bad++
		}
		rows = append(rows, r)
	}
	if err := printGuestRows(opts, rows); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d lab guests are not wired as wanted or not configured", bad, len(rows))
	}
	return nil
}

func newCmdLabExec(f *factory, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := newLabOptions(f)
	cmd := &cobra.Command{
		Use:   "exec INSTANCE -- CMD [ARGS...]",
		Short: "Run a command inside an instance's guest namespace",
		Long: `Exec runs CMD as the guest sees its system, as ip netns exec does: in the
guest's network namespace and a mount namespace of its own, with /sys
remounted for the guest (so /sys/class/net lists its eth0, as cloud-init
expects) and /etc/netns/<namespace>/ files over /etc's.`,
		Example: `  mdctl lab exec vm1 -- ip route
  mdctl lab exec vm1 -- curl -s http://169.254.169.254/latest/meta-data/instance-id
  mdctl lab exec vm1 --port 1 -- ping -c1 10.90.2.1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return usageErrorf("usage: mdctl lab exec INSTANCE -- CMD [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.name(f); err != nil {
				return err
			}
			opts.Instance, opts.Argv = args[0], args[1:]
			return runOrTest(cmd, opts, runF, labExecRun)
		},
	}
	cmd.ValidArgsFunction = completeNames(f, instanceKind().names)
	cmd.Flags().IntVar(&opts.Port, "port", 0, "which of the instance's ports (0 = its first NIC)")
	return cmd
}

func labExecRun(ctx context.Context, opts *labOptions) error {
	guests, err := labGuests(ctx, opts)
	if err != nil {
		return err
	}
	for _, g := range guests {
		if (g.InstanceName == opts.Instance || g.InstanceID == opts.Instance) && g.PortIndex == opts.Port {
			c := exec.CommandContext(ctx, opts.Argv[0], opts.Argv[1:]...)
			c.Stdin, c.Stdout, c.Stderr = opts.IO.In, opts.IO.Out, opts.IO.ErrOut
			err := dataplane.LabExec(opts.Dataplane, g, c)
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return &exitError{code: exit.ExitCode(), err: fmt.Errorf("%s exited with %d", opts.Argv[0], exit.ExitCode())}
			}
			if err != nil {
				return fmt.Errorf("lab exec %s: %w (is the guest up? mdctl lab up)", opts.Instance, err)
			}
			return nil
		}
	}
	return fmt.Errorf("no lab guest for instance %q port %d; list them with mdctl lab status", opts.Instance, opts.Port)
}
