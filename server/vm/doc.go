// Package vm runs real guests: one QEMU process per VM, for `mdctl lab up
// --image`, the VM tests and the bench's VM storm. It knows QEMU and
// nothing of the store: what nova decides about a VM (SMBIOS, NICs on
// their taps, config drive) comes in Spec.Devices from server/vmspec, the
// one place those facts live, and the launcher adds the machine, the
// overlay, the consoles and the accelerator.
//
// The API (also for anyone booting a VM on a bridge of their own):
//
//	Args(spec) []string                  the QEMU command line, pure (golden-tested)
//	Start(ctx, spec) (*Process, error)   overlay, pid file, console, its own process group
//	Running(dir) (pid int, ok bool)      is the VM whose files are in dir alive
//	Stop(dir, grace) error               power it off (SIGTERM, then SIGKILL) and wait
//	ChooseAccel / ProbeAccel             KVM when it really boots a kernel, else TCG
//
// NICs: each vmspec.NIC names its tap (tap<port[:11]>) and bridge. QEMU
// makes the tap itself (-netdev tap,ifname=...,script=no) in
// Spec.Namespace, the network namespace Start runs it in ("" for the
// caller's), so the tap lives exactly as long as QEMU. The caller plugs it
// into its bridge once it appears: dataplane.PlugVMTap for mdctl's
// networks and the operator's bridges alike (server.LabVMUp does this),
// or `ip link set TAP master BRIDGE up` for a bridge mdctl does not know.
// To put a VM on a plain host bridge: Namespace "", NICs with that bridge,
// Start, then plug.
//
// Disks: Spec.Image is never written. Start makes a qcow2 overlay in Dir
// backed by it (qemu-img create -b) and the VM boots that on virtio (vda);
// the config drive is attached as nova does (vmspec.Disk).
//
// Accelerator: /dev/kvm may exist where KVM aborts at the first MSR write
// (-cpu host) or never runs a kernel, so ProbeAccel boots a kernel under
// KVM with a bound and says KVM only when its banner reaches the serial
// console; ChooseAccel caches that verdict per QEMU build and host kernel.
//
// Files in Spec.Dir: disk.qcow2 (the overlay), console.log (ttyS0; further
// Spec.Serials are ttyS1...), qemu.pid (written by QEMU), qemu.log (its
// stderr). Running and Stop trust a pid only while /proc/<pid>/cmdline
// still names this pid file, so a recycled pid is never signalled.
package vm
