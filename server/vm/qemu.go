package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/vmspec"
)

// Binaries; tests and operators may point them elsewhere.
var (
	QEMU    = "qemu-system-x86_64"
	QEMUImg = "qemu-img"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// Files in a VM's Dir.
const (
	OverlayFile = "disk.qcow2"
	ConsoleFile = vmspec.ConsoleFile
	PidFile     = "qemu.pid"
	LogFile     = "qemu.log"
)

// Spec is one VM: what mdctl decides about it (Devices: SMBIOS, NICs,
// config drive, from vmspec, the one place nova's choices live) and what
// the launcher adds.
type Spec struct {
	Devices vmspec.Spec
	// Image is the base disk (qcow2 or raw, detected by qemu-img); never
	// written.
	Image string
	// Kernel, Initrd and Append boot the image directly ("" to boot its
	// own boot loader).
	Kernel, Initrd, Append string
	MemoryMB               int // default 512
	CPUs                   int // default 1
	Accel                  string
	// Namespace is the network namespace QEMU runs in ("" for the one this
	// process is in): QEMU makes each NIC's tap (Devices.NICs[i].Tap) there,
	// and the caller plugs it into its bridge once Start returns.
	Namespace string
	// Dir holds the VM's files; it must exist.
	Dir string
	// Serials are files for ttyS1, ttyS2, ... (ttyS0 is always
	// Dir/console.log).
	Serials []string
}

// Args is QEMU's command line for spec, without the binary.
func Args(s Spec) []string {
	mem, cpus := s.MemoryMB, s.CPUs
	if mem <= 0 {
		mem = 512
	}
	if cpus <= 0 {
		cpus = 1
	}
	a := []string{
		"-name", vmspec.QEMUEscape(s.Devices.Name),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-machine", "pc,accel=" + s.Accel,
	}
	if s.Accel == AccelKVM {
		a = append(a, "-cpu", "host")
	}
	a = append(a,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-pidfile", filepath.Join(s.Dir, PidFile),
		"-chardev", "file,id=console,path="+vmspec.QEMUEscape(filepath.Join(s.Dir, ConsoleFile)),
		"-serial", "chardev:console",
	)
	for i, f := range s.Serials {
		id := "serial" + strconv.Itoa(i+1)
		a = append(a, "-chardev", "file,id="+id+",path="+vmspec.QEMUEscape(f), "-serial", "chardev:"+id)
	}
	if s.Kernel != "" {
		a = append(a, "-kernel", s.Kernel)
		if s.Initrd != "" {
			a = append(a, "-initrd", s.Initrd)
		}
		if s.Append != "" {
			a = append(a, "-append", s.Append)
		}
	}
	a = append(a, "-drive", "file="+vmspec.QEMUEscape(filepath.Join(s.Dir, OverlayFile))+",format=qcow2,if=virtio,cache=unsafe")
	// nova's part: SMBIOS, the NICs on their taps, the config drive.
	a = append(a, s.Devices.QEMUArgs()...)
	// Entropy early: ssh host keys and Python's first getrandom need it.
	a = append(a, "-device", "virtio-rng-pci")
	return a
}

// Process is a started VM.
type Process struct {
	Pid  int
	Dir  string
	Args []string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start makes the overlay and runs QEMU for spec in its own process group,
// in spec.Namespace, detached: it outlives the caller unless Stop is
// called. It returns once QEMU wrote its pid file; its taps appear a
// moment later.
func Start(ctx context.Context, s Spec) (*Process, error) {
	name := s.Devices.Name
	if s.Accel != AccelKVM && s.Accel != AccelTCG {
		return nil, fmt.Errorf("vm %s: accel %q: want %s or %s", name, s.Accel, AccelKVM, AccelTCG)
	}
	if err := makeOverlay(ctx, s.Image, filepath.Join(s.Dir, OverlayFile)); err != nil {
		return nil, fmt.Errorf("vm %s: %w", name, err)
	}
	for _, f := range []string{ConsoleFile, PidFile} {
		if err := os.Remove(filepath.Join(s.Dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("vm %s: %w", name, err)
		}
	}
	logf, err := os.Create(filepath.Join(s.Dir, LogFile))
	if err != nil {
		return nil, fmt.Errorf("vm %s: %w", name, err)
	}
	defer logf.Close()
	args := Args(s)
	cmd := exec.Command(QEMU, args...) // not CommandContext: the VM outlives ctx
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := cmd.Start
	if s.Namespace != "" {
		start = func() error { return dataplane.Do(s.Namespace, cmd.Start) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("vm %s: start %s: %w", name, QEMU, err)
	}
	p := &Process{Pid: cmd.Process.Pid, Dir: s.Dir, Args: args, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	// QEMU writes its pid file once it has parsed everything; an early
	// exit is a bad argument or device, reported from its log.
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case <-p.done:
			return nil, fmt.Errorf("vm %s: qemu exited at start (%v): %s", name, p.err, tail(filepath.Join(s.Dir, LogFile)))
		case <-ctx.Done():
			_ = p.Stop(0)
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if _, ok := Running(s.Dir); ok {
			return p, nil
		}
		if time.Now().After(deadline) {
			_ = p.Stop(0)
			return nil, fmt.Errorf("vm %s: qemu wrote no pid file within 10s: %s", name, tail(filepath.Join(s.Dir, LogFile)))
		}
	}
}

// Exited is closed when a Process started by this process exits.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Stop powers the VM off: SIGTERM to its process group, SIGKILL after
// grace, and waits for it.
func (p *Process) Stop(grace time.Duration) error {
	_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("vm in %s: qemu %d did not exit after SIGKILL", p.Dir, p.Pid)
	}
}

func makeOverlay(ctx context.Context, image, overlay string) error {
	abs, err := filepath.Abs(image)
	if err != nil {
		return err
	}
	format, err := imageFormat(ctx, abs)
	if err != nil {
		return err
	}
	if err := os.Remove(overlay); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	out, err := exec.CommandContext(ctx, QEMUImg, "create", "-q", "-f", "qcow2", "-F", format, "-b", abs, overlay).CombinedOutput()
	if err != nil {
		return fmt.Errorf("overlay on %s: %v: %s", image, err, bytes.TrimSpace(out))
	}
	return nil
}

// imageFormat is "qcow2" or "raw", as qemu-img sees the file.
func imageFormat(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, QEMUImg, "info", "--output=json", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("image %s: %v: %s", path, err, bytes.TrimSpace(out))
	}
	for _, f := range []string{"qcow2", "raw"} {
		if bytes.Contains(out, []byte(`"format": "`+f+`"`)) {
			return f, nil
		}
	}
	return "", fmt.Errorf("image %s: neither qcow2 nor raw: %s", path, bytes.TrimSpace(out))
}

// Running reads dir's pid file and says whether that QEMU is alive.
func Running(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, PidFile))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || !bytes.Contains(cmdline, []byte(filepath.Join(dir, PidFile))) {
		return pid, false
	}
	// A zombie still has its cmdline until reaped; it is not running.
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return pid, false
		}
	}
	return pid, true
}

// Stop powers off the VM whose files are in dir, whoever started it:
// SIGTERM to its process group, SIGKILL after grace. A VM not running is
// not an error.
func Stop(dir string, grace time.Duration) error {
	pid, ok := Running(dir)
	if !ok {
		return nil
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, 0} {
		wait := grace
		if sig == 0 {
			wait = 10 * time.Second
		}
		for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if _, ok := Running(dir); !ok {
				return nil
			}
		}
		if sig != 0 {
			_ = syscall.Kill(-pid, sig)
		}
	}
	return fmt.Errorf("vm in %s: qemu %d still running after SIGKILL", dir, pid)
}

// tail is the last lines of a file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return string(b)
}
