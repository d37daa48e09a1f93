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
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestArgsGolden(t *testing.T) {
	tap := os.NewFile(0, "unused") // Args only counts NICs
	cases := []struct {
		name string
		spec Spec
	}{
		{"direct-kvm-iso9660", Spec{
			Name: "vm1", UUID: "5e14c6eb-74b1-4ece-be33-299a3f1f2cb4", SMBIOS: NovaSMBIOS("5e14c6eb-74b1-4ece-be33-299a3f1f2cb4", "1.0, dev"),
			Kernel: "/img/vmlinuz", Initrd: "/img/initrd.img", Append: "root=/dev/vda rw console=ttyS0", Accel: AccelKVM,
			NICs:        []NIC{{MAC: "fa:16:3e:00:00:01", Tap: tap}, {MAC: "fa:16:3e:00:00:02", Tap: tap}},
			ConfigDrive: "/d/disk.config.iso", ConfigDriveFormat: DriveISO9660, Dir: "/d", Serials: []string{"/d/report.log"},
		}},
		{"bootloader-tcg-vfat", Spec{
			Name: "vm2", UUID: "6e14c6eb-74b1-4ece-be33-299a3f1f2cb4", SMBIOS: NovaSMBIOS("6e14c6eb-74b1-4ece-be33-299a3f1f2cb4", ""),
			Accel: AccelTCG, MemoryMB: 1024, CPUs: 2, NICs: []NIC{{MAC: "fa:16:3e:00:00:03", Tap: tap}},
			ConfigDrive: "/d/disk.config.img", ConfigDriveFormat: DriveVFAT, Dir: "/d",
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

func TestNovaSMBIOS(t *testing.T) {
	got := NovaSMBIOS("u-1", "27.1.0").arg()
	want := "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova,version=27.1.0,serial=u-1,uuid=u-1,family=Virtual Machine"
	if got != want {
		t.Errorf("smbios\n got %s\nwant %s", got, want)
	}
}

func TestReadProgress(t *testing.T) {
	const (
		banner = "[    0.000000] Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org)\n"
		local  = "[   54.2] cloud-init[236]: Cloud-init v. 22.4.2 running 'init-local' at Fri, 04 Dec 2026 01:36:45 +0000. Up 53.68 seconds.\r\n"
		initS  = "[   69.4] cloud-init[296]: Cloud-init v. 22.4.2 running 'init' at Fri, 04 Dec 2026 01:37:00 +0000. Up 68.93 seconds.\n"
		config = "[   89.6] cloud-init[343]: Cloud-init v. 22.4.2 running 'modules:config' at Fri, 04 Dec 2026 01:37:20 +0000. Up 89.33 seconds.\n"
		final  = "[   98.7] cloud-init[377]: Cloud-init v. 22.4.2 running 'modules:final' at Fri, 04 Dec 2026 01:37:29 +0000. Up 98.19 seconds.\n"
		done   = "[  101.0] cloud-init[377]: Cloud-init v. 22.4.2 finished at Fri, 04 Dec 2026 01:37:32 +0000. Datasource DataSourceOpenStackLocal [net,ver=2].  Up 100.96 seconds\n"
		warn   = "[   90.7] cloud-init[343]: 2026-12-04 01:37:22,231 - util.py[WARNING]: Running module locale failed\n"
		errL   = "[   70.1] cloud-init[296]: 2026-12-04 01:37:01,000 - url_helper.py[ERROR]: boom\n"
		failed = "\x1b[0;1;31mFAILED\x1b[0m] Failed to start \x1b[0;1;39mcloud-final.service\x1b[0m - Execute cloud user/final scripts.\n"
		hangup = "\x1b[H\x1b[2J\x1b[3J\n\nDebian GNU/Linux 12 localhost ttyS0\n\nlocalhost login: "
	)
	cases := []struct {
		name, console, status string
		stages, errs, warns   int
		ds                    string
		kernel                bool
	}{
		{"empty", "", StatusNotRun, 0, 0, 0, "", false},
		{"kernel only", banner, StatusNotRun, 0, 0, 0, "", true},
		{"running", banner + local + initS, StatusRunning, 2, 0, 0, "", true},
		{"done with a warning, across getty's hang-up", banner + local + initS + hangup + config + warn + final + done + hangup, StatusDone, 4, 0, 1, "DataSourceOpenStackLocal [net,ver=2]", true},
		{"error logged", local + initS + errL + config + final + done, StatusError, 4, 1, 0, "DataSourceOpenStackLocal [net,ver=2]", false},
		{"error logged, still running", local + initS + errL, StatusRunning, 2, 1, 0, "", false},
		{"unit failed", local + initS + config + final + "[" + failed, StatusError, 4, 1, 0, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ReadProgress([]byte(c.console))
			if p.Status != c.status || len(p.Stages) != c.stages || len(p.Errors) != c.errs || len(p.Warnings) != c.warns || p.Datasource != c.ds || p.Kernel != c.kernel {
				t.Errorf("got %+v; want status %s, %d stages, %d errors, %d warnings, datasource %q, kernel %v",
					p, c.status, c.stages, c.errs, c.warns, c.ds, c.kernel)
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
	p, err := Start(context.Background(), Spec{Name: "t", UUID: "00000000-0000-4000-8000-000000000001", Image: base, Accel: AccelTCG, MemoryMB: 64, Dir: vmDir})
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
