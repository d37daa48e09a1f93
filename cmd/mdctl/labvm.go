package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/vm"
	"github.com/mdctl/mdctl/server/vmspec"
	"github.com/mdctl/mdctl/store"
)

// Lab VMs: `lab up --image` boots instances in QEMU (server.LabVMUp), and
// lab status, console and down read and stop them.

const (
	kindNamespace = "namespace"
	kindVM        = "vm"
)

// labVMFlags are lab up's VM flags.
type labVMFlags struct {
	Image, Kernel, Initrd, Append string
	MemoryMB                      int
	Accel                         string
	Version                       string // mdctl's, for SMBIOS as nova puts its own
}

// defaultAppend boots a directly booted image whose root is the whole
// first virtio disk, with the console on the first serial port, and
// without the IO-APIC timer check a slow TCG guest fails (and panics).
const defaultAppend = "root=/dev/vda rw console=ttyS0 no_timer_check"

func (f *labVMFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Image, "image", "", "boot the instances as QEMU VMs from this qcow2 or raw image (never written: VMs run on an overlay)")
	fl.StringVar(&f.Kernel, "kernel", "", "with --image: boot this kernel directly instead of the image's boot loader")
	fl.StringVar(&f.Initrd, "initrd", "", "with --kernel: its initrd")
	fl.StringVar(&f.Append, "append", "", "with --kernel: the kernel command line (default \""+defaultAppend+"\")")
	fl.IntVar(&f.MemoryMB, "memory", 512, "with --image: each VM's memory in MiB")
	fl.StringVar(&f.Accel, "accel", "auto", "with --image: auto (KVM when a probe boot proves it, else TCG), kvm or tcg")
	_ = cmd.RegisterFlagCompletionFunc("accel", cobra.FixedCompletions([]string{"auto", vm.AccelKVM, vm.AccelTCG}, cobra.ShellCompDirectiveNoFileComp))
}

func (f *labVMFlags) check() error {
	if f.Image == "" {
		if f.Kernel != "" || f.Initrd != "" || f.Append != "" {
			return usageErrorf("--kernel, --initrd and --append need --image")
		}
		return nil
	}
	if f.Kernel == "" && (f.Initrd != "" || f.Append != "") {
		return usageErrorf("--initrd and --append need --kernel")
	}
	switch f.Accel {
	case "auto", vm.AccelKVM, vm.AccelTCG:
	default:
		return usageErrorf("--accel %q: use auto, kvm or tcg", f.Accel)
	}
	for _, p := range []string{f.Image, f.Kernel, f.Initrd} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return usageErrorf("%v", err)
		}
	}
	if f.Kernel != "" && f.Append == "" {
		f.Append = defaultAppend
	}
	return nil
}

// labVMsToBoot resolves lab up's INSTANCE arguments (all instances with
// ports when none is named) to instance ids, when --image is given.
func labVMsToBoot(opts *labOptions, guests []dataplane.Guest) ([]string, error) {
	if opts.VM.Image == "" {
		return nil, nil
	}
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(opts.Argv) == 0 {
		for _, g := range guests {
			add(g.InstanceID)
		}
		return ids, nil
	}
	for _, ref := range opts.Argv {
		found := false
		for _, g := range guests {
			if g.InstanceName == ref || g.InstanceID == ref {
				add(g.InstanceID)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no instance %q with a port (mdctl instance list shows them)", ref)
		}
	}
	return ids, nil
}

// labVMInstances is every instance that is or is about to be a VM: its
// port belongs to QEMU's tap, never to a lab guest's veth.
func labVMInstances(opts *labOptions, boot []string) map[string]bool {
	ids := map[string]bool{}
	for _, id := range boot {
		ids[id] = true
	}
	vms, _ := server.LabVMs(opts.DataDir())
	for _, v := range vms {
		if _, ok := vm.Running(v.Dir); ok {
			ids[v.InstanceID] = true
		}
	}
	return ids
}

func vmInstanceIDs(vms []server.LabVM) map[string]bool {
	ids := map[string]bool{}
	for _, v := range vms {
		ids[v.InstanceID] = true
	}
	return ids
}

func withoutInstances(guests []dataplane.Guest, ids map[string]bool) []dataplane.Guest {
	var out []dataplane.Guest
	for _, g := range guests {
		if !ids[g.InstanceID] {
			out = append(out, g)
		}
	}
	return out
}

func labVMsUp(ctx context.Context, opts *labOptions, ids []string) ([]server.LabVM, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var vms []server.LabVM
	err := withStoreFn(ctx, opts.Store, func(st store.Store) error {
		snap, err := store.NewLive(st, nil).Snapshot(ctx)
		if err != nil {
			return err
		}
		vms, err = server.LabVMUp(ctx, st, snap.Config, server.LabVMOptions{
			DataDir: opts.DataDir(), Dataplane: opts.Dataplane,
			Image: opts.VM.Image, Kernel: opts.VM.Kernel, Initrd: opts.VM.Initrd, Append: opts.VM.Append,
			MemoryMB: opts.VM.MemoryMB, Accel: opts.VM.Accel, Version: opts.VM.Version, Logger: opts.Dataplane.Logger,
		}, ids)
		return err
	})
	if len(vms) > 0 {
		fmt.Fprintf(opts.IO.ErrOut, "accel: %s (%s)\n", vms[0].Accel, vms[0].AccelReason)
	}
	return vms, err
}

// vmInfo is what lab up and lab status say about a VM.
type vmInfo struct {
	State       string    `json:"state" yaml:"state"` // running, stopped
	Pid         int       `json:"pid,omitempty" yaml:"pid,omitempty"`
	Accel       string    `json:"accel" yaml:"accel"`
	AccelReason string    `json:"accel_reason" yaml:"accel_reason"`
	Taps        []string  `json:"taps" yaml:"taps"`
	ConfigDrive string    `json:"config_drive,omitempty" yaml:"config_drive,omitempty"`
	Console     string    `json:"console" yaml:"console"`
	Dir         string    `json:"dir" yaml:"dir"`
	Started     time.Time `json:"started" yaml:"started"`
	CloudInit   cloudInit `json:"cloud_init" yaml:"cloud_init"`
	// Requests are the instance's last requests serve's agent saw (oldest
	// first); nil when no serve answers on the data dir's admin socket.
	Requests []requestSeen `json:"requests_seen" yaml:"requests_seen"`
}

// requestSeen is one request serve saw from the VM.
type requestSeen struct {
	Time   time.Time `json:"time" yaml:"time"`
	Method string    `json:"method" yaml:"method"`
	Path   string    `json:"path" yaml:"path"`
	Status int       `json:"status" yaml:"status"`
	Error  string    `json:"error,omitempty" yaml:"error,omitempty"`
}

// recentRequests asks the data dir's serve for each instance's last
// requests; nil (not an error) when no serve answers.
func recentRequests(ctx context.Context, dataDir string) func(instanceID string) []requestSeen {
	c, err := admin.NewClient(filepath.Join(dataDir, admin.SocketName))
	if err != nil {
		return func(string) []requestSeen { return nil }
	}
	return func(id string) []requestSeen {
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		evs, err := c.Recent(ctx, id)
		if err != nil {
			return nil
		}
		out := []requestSeen{}
		for _, e := range evs {
			out = append(out, requestSeen{Time: e.Time, Method: e.Method, Path: e.Path, Status: e.Status, Error: e.Error})
		}
		return out
	}
}

func requestsCell(rs []requestSeen) string {
	switch {
	case rs == nil:
		return "- (no serve)"
	case len(rs) == 0:
		return "none"
	}
	last := rs[len(rs)-1]
	return fmt.Sprintf("%d, last %d %s %s ago", len(rs), last.Status, last.Path, time.Since(last.Time).Round(time.Second))
}

// cloudInit is what the VM's console says of cloud-init; Status is
// cloud-init's own word (not run, running, done, error).
type cloudInit struct {
	Status     string   `json:"status" yaml:"status"`
	Stages     []string `json:"stages" yaml:"stages"`
	Finished   bool     `json:"finished" yaml:"finished"`
	Datasource string   `json:"datasource,omitempty" yaml:"datasource,omitempty"`
	Errors     []string `json:"errors,omitempty" yaml:"errors,omitempty"`
	Warnings   []string `json:"warnings,omitempty" yaml:"warnings,omitempty"`
	Kernel     bool     `json:"kernel" yaml:"kernel"` // the guest's kernel started
}

func cloudInitOf(c vmspec.Console) cloudInit {
	return cloudInit{Status: c.Status(), Stages: c.Stages, Finished: c.Finished, Datasource: c.Datasource,
		Errors: c.Errors, Warnings: c.Warnings, Kernel: c.Kernel}
}

// vmRow reads a VM's state and console. A VM just booted (fresh) has no
// cloud-init output yet, which is no problem.
func vmRow(v server.LabVM, fresh bool) guestRow {
	pid, running := vm.Running(v.Dir)
	info := &vmInfo{
		State: "stopped", Accel: v.Accel, AccelReason: v.AccelReason, ConfigDrive: v.ConfigDriveFormat,
		Console: v.Console(), Dir: v.Dir, Started: v.Started,
	}
	if running {
		info.State, info.Pid = "running", pid
	}
	r := guestRow{Instance: v.Instance, Kind: kindVM, VM: info, Metadata: "none"}
	var macs []string
	for i, p := range v.Ports {
		macs = append(macs, p.MAC)
		info.Taps = append(info.Taps, p.Tap+"@"+p.Bridge)
		r.Addresses = append(r.Addresses, p.Addrs...)
		if i == 0 {
			r.Metadata = dataplane.Guest{MetadataHop: p.MetadataHop, MetadataViaDHCP: p.MetadataViaDHCP}.Via()
		}
	}
	r.MAC = strings.Join(macs, ",")
	console, _ := os.ReadFile(v.Console())
	info.CloudInit = cloudInitOf(vmspec.ParseConsole(string(console)))
	if !running {
		r.Problems = append(r.Problems, "stopped: its QEMU is gone (qemu.log in "+v.Dir+"); mdctl lab up --image boots it again")
	}
	if !fresh && info.CloudInit.Status == vmspec.StatusError {
		r.Problems = append(r.Problems, fmt.Sprintf("cloud-init: %d error(s), first: %s", len(info.CloudInit.Errors), info.CloudInit.Errors[0]))
	}
	r.OK = len(r.Problems) == 0
	return r
}

func printVMRows(opts *labOptions, rows []guestRow) error {
	t := newTable(opts.IO.Out, "VM", "STATE", "ACCEL", "MAC", "ADDRESSES", "METADATA VIA", "TAPS", "CLOUD-INIT", "STAGES", "REQUESTS SEEN", "PROBLEMS")
	for _, r := range rows {
		ci := r.VM.CloudInit
		status := ci.Status
		if ci.Datasource != "" {
			status += " (" + ci.Datasource + ")"
		}
		if n := len(ci.Errors); n > 0 {
			status += fmt.Sprintf(", %d error(s)", n)
		}
		stages := strings.Join(ci.Stages, ",")
		if stages == "" {
			stages = "-"
			if !ci.Kernel {
				stages = "- (no kernel output yet)"
			}
		}
		problems := strings.Join(r.Problems, "; ")
		if problems == "" {
			problems = "-"
		}
		t.row(r.Instance, r.VM.State, r.VM.Accel, r.MAC, strings.Join(r.Addresses, ","), r.Metadata, strings.Join(r.VM.Taps, ","), status, stages, requestsCell(r.VM.Requests), problems)
	}
	return t.flush()
}

func newCmdLabConsole(f *factory, runF func(context.Context, *labOptions) error) *cobra.Command {
	opts := newLabOptions(f)
	cmd := &cobra.Command{
		Use:   "console INSTANCE [-f]",
		Short: "Show a lab VM's serial console (follow it with -f)",
		Long: `Console prints what a lab VM wrote on its serial console (ttyS0), kept in
<data-dir>/lab-vms/<instance uuid>/console.log: the kernel, systemd and
cloud-init's own lines. With -f it keeps printing as the VM writes, until
the VM stops or you interrupt it.`,
		Example: "  mdctl lab console vm1\n  mdctl lab console vm1 -f",
		Args:    exactArgs(1, "one INSTANCE (name or id)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Instance = args[0]
			return runOrTest(cmd, opts, runF, labConsoleRun)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing what the VM writes")
	return cmd
}

func labConsoleRun(ctx context.Context, opts *labOptions) error {
	vms, err := server.LabVMs(opts.DataDir())
	if err != nil {
		return err
	}
	for _, v := range vms {
		if v.Instance == opts.Instance || v.InstanceID == opts.Instance {
			return showConsole(ctx, opts, v)
		}
	}
	return fmt.Errorf("no lab VM for %q in %s (boot one with mdctl lab up --image FILE %s)", opts.Instance, opts.DataDir(), opts.Instance)
}

func showConsole(ctx context.Context, opts *labOptions, v server.LabVM) error {
	f, err := os.Open(v.Console())
	if err != nil {
		return fmt.Errorf("console of %s: %w", v.Instance, err)
	}
	defer f.Close()
	for {
		if _, err := io.Copy(opts.IO.Out, f); err != nil {
			return err
		}
		if !opts.Follow {
			return nil
		}
		if _, ok := vm.Running(v.Dir); !ok {
			_, err := io.Copy(opts.IO.Out, f) // what it wrote before it stopped
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
