package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/server/vmspec"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestArgsGolden(t *testing.T) {
	nics := []vmspec.NIC{{PortID: "p1", MAC: "fa:16:3e:00:00:01", Tap: "tapp1", Bridge: "brqn1"}, {PortID: "p2", MAC: "fa:16:3e:00:00:02", Tap: "tapp2", Bridge: "br0"}}
	cases := []struct {
		name string
		spec Spec
	}{
		{"direct-kvm-iso9660", Spec{
			Devices: vmspec.Spec{InstanceID: "5e14c6eb-74b1-4ece-be33-299a3f1f2cb4", Name: "vm1", NICs: nics,
				ConfigDrive: &vmspec.Disk{Path: "/d/disk.config.iso", Format: configdrive.FormatISO9660}},
			Kernel: "/img/vmlinuz", Initrd: "/img/initrd.img", Append: "root=/dev/vda rw console=ttyS0", Accel: AccelKVM,
			Dir: "/d", Serials: []string{"/d/report.log"},
		}},
		{"bootloader-tcg-vfat", Spec{
			Devices: vmspec.Spec{InstanceID: "6e14c6eb-74b1-4ece-be33-299a3f1f2cb4", Name: "vm,2", NICs: nics[:1],
				ConfigDrive: &vmspec.Disk{Path: "/d/disk.config.img", Format: configdrive.FormatVFAT}},
			Accel: AccelTCG, MemoryMB: 1024, CPUs: 2, Dir: "/d",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(Args(c.spec), "\n") + "\n"
			path := filepath.Join("testdata", c.name+".args")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("args differ from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// TestStartStop runs a real QEMU (TCG, no kernel: it sits in the BIOS) on
// a tiny raw image: an overlay in Dir, a pid file Running trusts, a base
// image never written, and Stop ending the whole process group.
func TestStartStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath(QEMU); err != nil {
		t.Skipf("needs %s (make test-deps installs qemu-system-x86): %v", QEMU, err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	if err := os.WriteFile(base, bytes.Repeat([]byte{0}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	before := sum(t, base)
	vmDir := filepath.Join(dir, "vm")
	if err := os.Mkdir(vmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Start(context.Background(), Spec{Devices: vmspec.Spec{Name: "t", InstanceID: "00000000-0000-4000-8000-000000000001"}, Image: base, Accel: AccelTCG, MemoryMB: 64, Dir: vmDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(0) })
	pid, ok := Running(vmDir)
	if !ok || pid != p.Pid {
		t.Fatalf("Running = %d, %v; want %d, true", pid, ok, p.Pid)
	}
	out, err := exec.Command(QEMUImg, "info", "-U", filepath.Join(vmDir, OverlayFile)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backing file: "+base) {
		t.Errorf("overlay: %v %s", err, out)
	}
	if err := Stop(vmDir, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("qemu still there after Stop")
	}
	if _, ok := Running(vmDir); ok {
		t.Error("Running after Stop")
	}
	if sum(t, base) != before {
		t.Error("the base image was written")
	}
}

func sum(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
