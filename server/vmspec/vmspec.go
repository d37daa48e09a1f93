// Package vmspec owns what a VM nova's libvirt driver boots for an instance
// looks like to the guest: its SMBIOS system information (the one fact
// cloud-init's ds-identify and its OpenStack datasource check before they
// look for metadata at all), its NICs on their bridges, and its config
// drive disk. It renders them as a libvirt domain fragment and as QEMU
// arguments, for `mdctl instance show --libvirt|--qemu` and for the lab's
// VM launcher alike, so the facts live here once.
//
// It is pure: it does no I/O and never starts a VM.
package vmspec

import (
	"fmt"
	"strings"

	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// nova's SMBIOS strings (nova/version.py vendor_string, product_string; the
// family from nova/virt/libvirt/driver.py _get_guest_config_sysinfo).
const (
	Manufacturer = "OpenStack Foundation"
	Product      = "OpenStack Nova"
	Family       = "Virtual Machine"
)

// SysInfo is the SMBIOS type 1 (system) record nova gives a guest.
type SysInfo struct {
	Manufacturer, Product, Version, Serial, UUID, Family string
}

// NovaSysInfo is the record for an instance: nova's strings, version the
// serving software's (nova puts its own version there; "" leaves it out),
// and serial and uuid both the instance's uuid (nova's [libvirt]
// sysinfo_serial = unique).
func NovaSysInfo(instanceUUID, version string) SysInfo {
	return SysInfo{Manufacturer: Manufacturer, Product: Product, Version: version, Serial: instanceUUID, UUID: instanceUUID, Family: Family}
}

// entries are the record's fields in libvirt's order, with their names;
// empty ones are left out.
func (s SysInfo) entries() [][2]string {
	var out [][2]string
	for _, e := range [][2]string{
		{"manufacturer", s.Manufacturer}, {"product", s.Product}, {"version", s.Version},
		{"serial", s.Serial}, {"uuid", s.UUID}, {"family", s.Family},
	} {
		if e[1] != "" {
			out = append(out, e)
		}
	}
	return out
}

// QEMUArgs are the arguments that give a QEMU guest this record, ready for
// exec (no shell quoting): -uuid and -smbios type=1, as libvirt passes
// them for <sysinfo type='smbios'> with <smbios mode='sysinfo'/>.
func (s SysInfo) QEMUArgs() []string {
	fields := []string{"type=1"}
	for _, e := range s.entries() {
		fields = append(fields, e[0]+"="+QEMUEscape(e[1]))
	}
	return []string{"-uuid", s.UUID, "-smbios", strings.Join(fields, ",")}
}

// QEMUEscape doubles commas, QEMU's escape inside an option's value.
func QEMUEscape(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// NIC is one of the instance's ports as a VM's virtio NIC sees it.
type NIC struct {
	PortID string
	MAC    string
	Tap    string // tap<port[:11]>, the device name neutron's agents look for
	Bridge string // the bridge the tap goes on
	MTU    int    // 0: the bridge's
}

// Disk is the config drive image and its format. nova attaches an
// iso9660 drive as a cdrom on the last IDE slot (hdd) and a vfat one as a
// disk on the last virtio slot (vdz), on an x86 pc machine
// (nova/virt/libvirt/blockinfo.py, get_config_drive_type and last_device).
type Disk struct {
	Path   string
	Format string // configdrive.FormatISO9660 or configdrive.FormatVFAT
}

// Spec is everything about a VM that mdctl decides: the rest (memory,
// root disk, console) is the launcher's.
type Spec struct {
	InstanceID  string
	Name        string
	Version     string // SMBIOS system version ("" for none)
	NICs        []NIC
	ConfigDrive *Disk // nil: none
}

// QEMUArgs are Spec as QEMU arguments, ready for exec: SMBIOS, one
// virtio-net NIC per port on a tap named for the port (script=no: the
// caller plugs the tap into its bridge), and the config drive attached as
// nova does.
func (s Spec) QEMUArgs() []string {
	args := NovaSysInfo(s.InstanceID, s.Version).QEMUArgs()
	for i, n := range s.NICs {
		id := fmt.Sprintf("net%d", i)
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=%s,ifname=%s,script=no,downscript=no", id, n.Tap),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=%s", id, n.MAC))
	}
	if d := s.ConfigDrive; d != nil {
		args = append(args, "-drive", d.qemuDrive())
	}
	return args
}

func (d Disk) qemuDrive() string {
	if d.Format == configdrive.FormatVFAT {
		return "file=" + QEMUEscape(d.Path) + ",format=raw,if=virtio,index=25"
	}
	return "file=" + QEMUEscape(d.Path) + ",format=raw,if=ide,index=3,media=cdrom"
}

// LibvirtXML is Spec as the parts of a libvirt domain nova writes for it:
// <uuid>, <sysinfo type='smbios'>, <os><smbios mode='sysinfo'/></os>, and
// under <devices> one bridge <interface> per NIC and the config drive
// <disk>. It is a fragment to merge into a domain (virsh edit), not a
// whole domain.
func (s Spec) LibvirtXML() string {
	var b strings.Builder
	w := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("  ", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	w(0, "<domain type='kvm'>")
	w(1, "<name>%s</name>", xmlEscape(s.Name))
	w(1, "<uuid>%s</uuid>", xmlEscape(s.InstanceID))
	w(1, "<sysinfo type='smbios'>")
	w(2, "<system>")
	for _, e := range NovaSysInfo(s.InstanceID, s.Version).entries() {
		w(3, "<entry name='%s'>%s</entry>", e[0], xmlEscape(e[1]))
	}
	w(2, "</system>")
	w(1, "</sysinfo>")
	w(1, "<os>")
	w(2, "<smbios mode='sysinfo'/>")
	w(1, "</os>")
	w(1, "<devices>")
	for _, n := range s.NICs {
		w(2, "<interface type='bridge'>")
		w(3, "<mac address='%s'/>", xmlEscape(n.MAC))
		w(3, "<source bridge='%s'/>", xmlEscape(n.Bridge))
		w(3, "<target dev='%s'/>", xmlEscape(n.Tap))
		w(3, "<model type='virtio'/>")
		if n.MTU > 0 {
			w(3, "<mtu size='%d'/>", n.MTU)
		}
		w(2, "</interface>")
	}
	if d := s.ConfigDrive; d != nil {
		device, bus, dev := "cdrom", "ide", "hdd"
		if d.Format == configdrive.FormatVFAT {
			device, bus, dev = "disk", "virtio", "vdz"
		}
		w(2, "<disk type='file' device='%s'>", device)
		w(3, "<driver name='qemu' type='raw' cache='none'/>")
		w(3, "<source file='%s'/>", xmlEscape(d.Path))
		w(3, "<target dev='%s' bus='%s'/>", dev, bus)
		w(2, "</disk>")
	}
	w(1, "</devices>")
	w(0, "</domain>")
	return b.String()
}

var xmlReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

func xmlEscape(s string) string { return xmlReplacer.Replace(s) }

// FromView is the Spec of an instance: one NIC per port, in the order nova
// plugs them, each with its tap on its network's bridge
// (dataplane.NetworkBridge), and drive as its config drive (nil: none; the
// caller knows whether nova would give it one and where serve keeps it).
func FromView(v store.InstanceView, version string, drive *Disk) Spec {
	s := Spec{InstanceID: v.Instance.ID, Name: v.Instance.Name, Version: version, ConfigDrive: drive}
	for _, p := range v.Ports {
		br, _ := dataplane.NetworkBridge(p.Network)
		s.NICs = append(s.NICs, NIC{PortID: p.Port.ID, MAC: p.Port.MACAddress, Tap: dataplane.TapName(p.Port.ID), Bridge: br, MTU: p.Network.MTU})
	}
	return s
}
