package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mdctl/mdctl/server/vmspec"
)

// Verdict is which accelerator VMs get on this host, and why.
type Verdict struct {
	Accel  string    `json:"accel"`
	Reason string    `json:"reason"`
	Host   string    `json:"host"` // QEMU version and host kernel the probe ran on
	At     time.Time `json:"at"`
}

// ProbeBound is how long a KVM probe may take to show a kernel booting.
// A working KVM prints the banner in well under a second.
var ProbeBound = 20 * time.Second

// kernelBanner is the first line every Linux kernel prints on its console.
const kernelBanner = "Linux version "

// ChooseAccel returns the cached verdict when it was reached on this host
// (same QEMU, same host kernel), else probes and caches the result in
// cacheFile. Without a kernel to probe with, KVM cannot be proven and the
// answer is TCG (not cached).
func ChooseAccel(ctx context.Context, cacheFile, kernel, initrd string) (Verdict, error) {
	host := hostKey(ctx)
	if b, err := os.ReadFile(cacheFile); err == nil {
		var v Verdict
		if json.Unmarshal(b, &v) == nil && v.Host == host && (v.Accel == AccelKVM || v.Accel == AccelTCG) {
			return v, nil
		}
	}
	if kernel == "" {
		if _, err := os.Stat("/dev/kvm"); err != nil {
			return Verdict{Accel: AccelTCG, Reason: "no /dev/kvm", Host: host, At: time.Now()}, nil
		}
		return Verdict{Accel: AccelTCG, Reason: "no kernel to prove KVM with (give --kernel, or --accel kvm to force it)", Host: host, At: time.Now()}, nil
	}
	v := ProbeAccel(ctx, kernel, initrd)
	if ctx.Err() != nil {
		return v, ctx.Err()
	}
	v.Host, v.At = host, time.Now()
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.MkdirAll(filepath.Dir(cacheFile), 0o755); err != nil {
		return v, fmt.Errorf("accel cache: %w", err)
	}
	if err := writeAtomic(cacheFile, append(b, '\n')); err != nil {
		return v, fmt.Errorf("accel cache: %w", err)
	}
	return v, nil
}

// ProbeAccel boots kernel under KVM (-cpu host), bounded by ProbeBound,
// and says KVM only when the kernel's banner reaches the serial console:
// /dev/kvm can exist on a host where KVM aborts at the first MSR or never
// runs a kernel. Otherwise TCG, with what went wrong.
func ProbeAccel(ctx context.Context, kernel, initrd string) Verdict {
	if err := unix.Access("/dev/kvm", unix.R_OK|unix.W_OK); err != nil {
		return Verdict{Accel: AccelTCG, Reason: "/dev/kvm: " + err.Error()}
	}
	dir, err := os.MkdirTemp("", "mdctl-kvm-probe-")
	if err != nil {
		return Verdict{Accel: AccelTCG, Reason: "probe: " + err.Error()}
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, ConsoleFile)
	args := []string{
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "pc,accel=kvm", "-cpu", "host", "-m", "256",
		"-chardev", "file,id=c,path=" + vmspec.QEMUEscape(console), "-serial", "chardev:c",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1",
	}
	if initrd != "" {
		args = append(args, "-initrd", initrd)
	}
	cmd := exec.Command(QEMU, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return Verdict{Accel: AccelTCG, Reason: "probe: " + err.Error()}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	deadline := time.After(ProbeBound)
	for {
		if b, _ := os.ReadFile(console); bytes.Contains(b, []byte(kernelBanner)) {
			return Verdict{Accel: AccelKVM, Reason: "a kernel booted under KVM"}
		}
		select {
		case err := <-done:
			done <- err // for the deferred reap
			msg := strings.TrimSpace(stderr.String())
			if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
				msg = msg[i+1:]
			}
			return Verdict{Accel: AccelTCG, Reason: fmt.Sprintf("KVM probe: qemu exited (%v) before the kernel started: %s", err, msg)}
		case <-deadline:
			return Verdict{Accel: AccelTCG, Reason: fmt.Sprintf("KVM probe: no kernel output within %s", ProbeBound)}
		case <-ctx.Done():
			return Verdict{Accel: AccelTCG, Reason: "probe cancelled"}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hostKey names what a verdict depends on: the QEMU build and the host kernel.
func hostKey(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, QEMU, "--version").Output()
	qemu := "qemu?"
	if err == nil {
		qemu, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	var u unix.Utsname
	_ = unix.Uname(&u)
	return qemu + "; " + unix.ByteSliceToString(u.Release[:])
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
