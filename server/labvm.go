package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/vendordata"
	"github.com/mdctl/mdctl/server/vm"
	"github.com/mdctl/mdctl/server/vmspec"
	"github.com/mdctl/mdctl/store"
)

// labVMStateFile records what LabVMUp made, beside QEMU's own files.
const labVMStateFile = "vm.json"

// DefaultAccelCache is where the KVM probe's verdict is kept for the host.
const DefaultAccelCache = "/var/cache/mdctl/accel.json"

// LabVMOptions say how LabVMUp boots instances.
type LabVMOptions struct {
	DataDir   string
	Dataplane dataplane.Options
	// Image is the base disk; Kernel, Initrd, Append boot it directly.
	Image, Kernel, Initrd, Append string
	MemoryMB                      int
	// Accel is "auto" (probe, cached in AccelCache), vm.AccelKVM or vm.AccelTCG.
	Accel      string
	AccelCache string
	Version    string // SMBIOS system version (nova puts its own there)
	// Serials names extra serial ports (ttyS1...), files in the VM's dir.
	Serials  []string
	ReadFile func(string) ([]byte, error) // vendordata_jsonfile_path; default os.ReadFile
	Logger   *slog.Logger
}

// LabVM is one lab VM as LabVMUp left it.
type LabVM struct {
	Instance          string      `json:"instance" yaml:"instance"`
	InstanceID        string      `json:"instance_id" yaml:"instance_id"`
	Dir               string      `json:"dir" yaml:"dir"`
	Image             string      `json:"image" yaml:"image"`
	Accel             string      `json:"accel" yaml:"accel"`
	AccelReason       string      `json:"accel_reason" yaml:"accel_reason"`
	ConfigDrive       string      `json:"config_drive,omitempty" yaml:"config_drive,omitempty"`
	ConfigDriveFormat string      `json:"config_drive_format,omitempty" yaml:"config_drive_format,omitempty"`
	Ports             []LabVMPort `json:"ports" yaml:"ports"`
	Started           time.Time   `json:"started" yaml:"started"`
	Args              []string    `json:"qemu_args" yaml:"qemu_args"`
}

// LabVMPort is one NIC of a lab VM.
type LabVMPort struct {
	PortID    string   `json:"port_id" yaml:"port_id"`
	MAC       string   `json:"mac" yaml:"mac"`
	Tap       string   `json:"tap" yaml:"tap"`
	Bridge    string   `json:"bridge" yaml:"bridge"`
	Namespace string   `json:"namespace" yaml:"namespace"`
	Addrs     []string `json:"addresses" yaml:"addresses"`
	// MetadataHop is where the plan routes 169.254.169.254 ("" for the
	// default route), MetadataViaDHCP whether that is the DHCP port.
	MetadataHop     string `json:"metadata_hop,omitempty" yaml:"metadata_hop,omitempty"`
	MetadataViaDHCP bool   `json:"metadata_via_dhcp,omitempty" yaml:"metadata_via_dhcp,omitempty"`
}

// Console is the VM's serial console file.
func (v LabVM) Console() string { return filepath.Join(v.Dir, vm.ConsoleFile) }

// LabVMDir is the folder of an instance's lab VM (by instance id, which
// no rename changes): where vmspec.ConsolePath puts its console, which
// trace reads too.
func LabVMDir(dataDir, instanceID string) string {
	return filepath.Join(labVMsRoot(dataDir), instanceID)
}

// labVMsRoot holds every lab VM's folder.
func labVMsRoot(dataDir string) string { return filepath.Join(dataDir, vmspec.LabVMsDir) }

// LabVMUp boots each instance (name or id) in refs as a QEMU VM: an overlay
// on o.Image, one NIC per port with the port's MAC on its network's bridge,
// nova's SMBIOS, and the config drive when nova would attach one. A VM
// already running is left as it is. Callers remove the instances' lab
// guest namespaces first: a VM's tap takes the guest's veth's name.
func LabVMUp(ctx context.Context, st store.Reader, cfg store.Config, o LabVMOptions, refs []string) ([]LabVM, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	guests, err := LabGuests(ctx, st, cfg)
	if err != nil {
		return nil, err
	}
	verdict, err := chooseAccel(ctx, o)
	if err != nil {
		return nil, err
	}
	var out []LabVM
	var errs error
	for _, ref := range refs {
		v, err := labVMUp(ctx, st, cfg, o, verdict, guests, ref)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("lab vm %s: %w", ref, err))
			continue
		}
		out = append(out, v)
	}
	return out, errs
}

func chooseAccel(ctx context.Context, o LabVMOptions) (vm.Verdict, error) {
	switch o.Accel {
	case vm.AccelKVM, vm.AccelTCG:
		return vm.Verdict{Accel: o.Accel, Reason: "asked for with --accel"}, nil
	case "", "auto":
		cache := o.AccelCache
		if cache == "" {
			cache = DefaultAccelCache
		}
		return vm.ChooseAccel(ctx, cache, o.Kernel, o.Initrd)
	}
	return vm.Verdict{}, fmt.Errorf("accel %q: use auto, %s or %s", o.Accel, vm.AccelKVM, vm.AccelTCG)
}

func labVMUp(ctx context.Context, st store.Reader, cfg store.Config, o LabVMOptions, verdict vm.Verdict, guests []dataplane.Guest, ref string) (LabVM, error) {
	view, err := st.InstanceView(ctx, ref)
	if err != nil {
		return LabVM{}, err
	}
	inst := view.Instance
	dir := LabVMDir(o.DataDir, inst.ID)
	if _, ok := vm.Running(dir); ok {
		v, err := ReadLabVM(dir)
		o.Logger.Info("lab vm already running", "instance", inst.Name, "dir", dir)
		return v, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return LabVM{}, err
	}
	v := LabVM{
		Instance: inst.Name, InstanceID: inst.ID, Dir: dir, Image: o.Image,
		Accel: verdict.Accel, AccelReason: verdict.Reason, Started: time.Now().UTC(),
	}
	var mine []dataplane.Guest
	for _, g := range guests {
		if g.InstanceID == inst.ID {
			mine = append(mine, g)
		}
	}
	ns, err := vmNamespace(o.Dataplane, mine)
	if err != nil {
		return LabVM{}, err
	}
	spec := vm.Spec{
		Image: o.Image, Kernel: o.Kernel, Initrd: o.Initrd, Append: o.Append,
		MemoryMB: o.MemoryMB, Accel: verdict.Accel, Dir: dir, Namespace: ns,
	}
	for _, s := range o.Serials {
		spec.Serials = append(spec.Serials, filepath.Join(dir, s))
	}
	var drive *vmspec.Disk
	if NeedsConfigDrive(inst, cfg) {
		v.ConfigDriveFormat = cfg.ConfigDriveFormat
		v.ConfigDrive = filepath.Join(dir, "disk.config"+configDriveExt(cfg.ConfigDriveFormat))
		if _, err := WriteConfigDrive(ctx, view, cfg, v.ConfigDriveFormat, v.ConfigDrive, o.ReadFile, time.Now(), o.Logger); err != nil {
			return LabVM{}, err
		}
		drive = &vmspec.Disk{Path: v.ConfigDrive, Format: v.ConfigDriveFormat}
	}
	// Every port gets a NIC, as nova gives one even to a config-drive-only
	// guest: cloud-init needs the MAC network_data.json names.
	spec.Devices = vmspec.FromView(view, o.Version, drive)
	for _, g := range mine {
		if err := dataplane.EnsureVMBridge(ctx, o.Dataplane, g); err != nil {
			return LabVM{}, err
		}
		v.Ports = append(v.Ports, LabVMPort{PortID: g.PortID, MAC: g.MAC, Tap: dataplane.TapName(g.PortID), Bridge: g.Bridge, Namespace: ns,
			Addrs: g.Addrs, MetadataHop: g.MetadataHop, MetadataViaDHCP: g.MetadataViaDHCP})
	}
	p, err := vm.Start(ctx, spec)
	if err != nil {
		return LabVM{}, err
	}
	v.Args = p.Args
	if err := plugVMTaps(ctx, o.Dataplane, mine, p); err != nil {
		_ = p.Stop(time.Second)
		return LabVM{}, err
	}
	if err := writeLabVM(v); err != nil {
		_ = p.Stop(time.Second)
		return LabVM{}, err
	}
	return v, nil
}

// vmNamespace is where the VM's QEMU runs: its taps are made there, so
// all its ports' bridges must share one namespace.
func vmNamespace(opts dataplane.Options, guests []dataplane.Guest) (string, error) {
	if len(guests) == 0 {
		return dataplane.VMNamespace(opts, dataplane.Guest{}), nil
	}
	ns := dataplane.VMNamespace(opts, guests[0])
	for _, g := range guests[1:] {
		if g.OnHost != guests[0].OnHost {
			return "", fmt.Errorf("ports on the operator's L2 and on mdctl's segment: one QEMU makes its taps in one namespace")
		}
	}
	return ns, nil
}

// vmTapWait bounds how long QEMU may take to make its taps after its pid
// file: it opens them once its arguments are parsed.
const vmTapWait = 30 * time.Second

// plugVMTaps waits for each tap QEMU makes and plugs it into its bridge
// (dataplane.PlugVMTap), marked as the lab's.
func plugVMTaps(ctx context.Context, opts dataplane.Options, guests []dataplane.Guest, p *vm.Process) error {
	for _, g := range guests {
		for end := time.Now().Add(vmTapWait); !dataplane.TapOf(opts, g.PortID, g.OnHost).Exists; time.Sleep(50 * time.Millisecond) {
			select {
			case <-p.Exited():
				return fmt.Errorf("qemu exited before it made %s: %s", dataplane.TapName(g.PortID), filepath.Join(p.Dir, vm.LogFile))
			case <-ctx.Done():
				return ctx.Err()
			default:
			}
			if time.Now().After(end) {
				return fmt.Errorf("qemu made no %s within %s", dataplane.TapName(g.PortID), vmTapWait)
			}
		}
		if err := dataplane.PlugVMTap(opts, g); err != nil {
			return err
		}
	}
	return nil
}

// WriteConfigDrive builds view's config drive in format at path, with the
// settings in cfg and vendor data fetched as serve would: what nova
// attaches at boot. It returns how many files the drive holds.
func WriteConfigDrive(ctx context.Context, view store.InstanceView, cfg store.Config, format, path string, readFile func(string) ([]byte, error), now time.Time, log *slog.Logger) (files int, err error) {
	dynamic, err := vendordata.Fetcher{}.Dynamic(ctx, log, cfg, view.Instance)
	if err != nil {
		return 0, err
	}
	fs, err := ConfigDriveFiles(view, cfg, readFile, dynamic, now, nil)
	if err != nil {
		return 0, err
	}
	if err := configdrive.WriteFile(path, format, fs); err != nil {
		return 0, fmt.Errorf("%w (is the folder of %s writable?)", err, path)
	}
	return len(fs), nil
}

func writeLabVM(v LabVM) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(v.Dir, labVMStateFile), append(b, '\n'), 0o644)
}

// ReadLabVM reads what LabVMUp recorded in dir.
func ReadLabVM(dir string) (LabVM, error) {
	b, err := os.ReadFile(filepath.Join(dir, labVMStateFile))
	if err != nil {
		return LabVM{}, fmt.Errorf("lab vm %s: %w", dir, err)
	}
	var v LabVM
	if err := json.Unmarshal(b, &v); err != nil {
		return LabVM{}, fmt.Errorf("lab vm %s: %w", dir, err)
	}
	v.Dir = dir
	return v, nil
}

// LabVMs lists the lab VMs recorded in the data dir, running or not, by
// instance name.
func LabVMs(dataDir string) ([]LabVM, error) {
	ents, err := os.ReadDir(labVMsRoot(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []LabVM
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		v, err := ReadLabVM(filepath.Join(labVMsRoot(dataDir), e.Name()))
		if err != nil {
			continue // half made by an up that failed: LabVMDown still removes it
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// LabVMDown powers off every lab VM in the data dir and removes its folder
// (overlay, console, config drive). Its taps go with QEMU.
func LabVMDown(dataDir string) error {
	root := labVMsRoot(dataDir)
	ents, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs error
	for _, e := range ents {
		dir := filepath.Join(root, e.Name())
		if err := vm.Stop(dir, 5*time.Second); err != nil {
			errs = errors.Join(errs, err)
			continue
		}
		errs = errors.Join(errs, os.RemoveAll(dir))
	}
	if errs == nil {
		os.Remove(root)
	}
	return errs
}
