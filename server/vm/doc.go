// Package vm runs real guests: one QEMU process per VM, as nova's libvirt
// driver would configure it, for `mdctl lab up --image` and the VM tests.
// It knows QEMU and nothing of the store, the data plane or HTTP: callers
// hand it a Spec with open tap files and disk paths, and it hands back a
// running process whose files live in Spec.Dir.
//
// The API (also for anyone plugging a VM into a bridge of their own):
//
//	Args(spec) []string                  the QEMU command line, pure (golden-tested)
//	Start(ctx, spec) (*Process, error)   overlay, pid file, console, its own process group
//	Running(dir) (pid int, ok bool)      is the VM whose files are in dir alive
//	Stop(dir, grace) error               power it off (SIGTERM, then SIGKILL) and wait
//	ChooseAccel / ProbeAccel             KVM when it really boots a kernel, else TCG
//	NovaSMBIOS(uuid, version)            system info exactly as nova sets it
//	ReadProgress(console) Progress       cloud-init's stages, errors and status from a console
//
// A NIC is a MAC and an open tap file (Spec.NICs[i].Tap): QEMU gets it as
// -netdev tap,fd=N and is its only holder once Start returns, so the tap
// (made non-persistent by dataplane.OpenTap) goes when QEMU exits. To put
// a VM on a bridge of your own, open the tap with
// dataplane.OpenTap(dataplane.TapSpec{Namespace: "", Name: "tapX", Bridge: "br0"})
// and pass it here; for mdctl's own networks dataplane.PlugVM does both.
//
// Disks: Spec.Image is never written. Start makes a qcow2 overlay in Dir
// backed by it (qemu-img create -b), and the VM boots that, on virtio
// (vda). A config drive goes as nova attaches it: iso9660 as an IDE cdrom,
// vfat as a second virtio disk, both read-only.
//
// SMBIOS type 1 is nova's: manufacturer "OpenStack Foundation", product
// "OpenStack Nova", serial and uuid the instance uuid, family "Virtual
// Machine". cloud-init's ds-identify looks for that product name before it
// enables the OpenStack datasource at all.
//
// Files in Spec.Dir: disk.qcow2 (the overlay), console.log (ttyS0, the
// serial console; further Spec.Serials are ttyS1...), qemu.pid (written by
// QEMU), qemu.log (its stderr). Running and Stop trust a pid only while
// /proc/<pid>/cmdline still names this pid file, so a recycled pid is
// never signalled.
package vm
