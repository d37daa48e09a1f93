// Package testimage builds (once per recipe, cached) and reads mdctl's test
// VM image: Debian bookworm from Debian packages with cloud-init, booted
// directly (build.sh says how). Tests and the bench boot it with server/vm;
// its mdctl-report unit writes a report on ttyS1 after cloud-final, which
// ParseReport reads.
package testimage

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed build.sh
var recipe []byte

// CacheRoot is where images are kept, one folder per recipe hash.
var CacheRoot = "/var/cache/mdctl"

// Append is the kernel command line the image boots with. no_timer_check:
// under TCG on a busy host the kernel's IO-APIC timer check fails and it
// panics ("IO-APIC + timer doesn't work"), as cloud images know.
const Append = "root=/dev/vda rw console=ttyS0 no_timer_check"

// ReportSerial names the file for the image's second serial port, where
// mdctl-report writes.
const ReportSerial = "report.log"

// Image is a built image.
type Image struct {
	Dir, Disk, Kernel, Initrd string
	BuildSeconds              string // how long its build took, as recorded
}

// Ensure returns the cached image, building it first when this recipe has
// none (several minutes: debootstrap). It runs the embedded build.sh, so a
// test binary builds the same image `make test-deps` does.
func Ensure(ctx context.Context) (Image, error) {
	dir, err := os.MkdirTemp("", "mdctl-testimage-")
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(dir)
	// The script hashes itself: keep its name out of the hash by writing
	// the same bytes.
	script := filepath.Join(dir, "build.sh")
	if err := os.WriteFile(script, recipe, 0o755); err != nil {
		return Image{}, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "/bin/sh", script, CacheRoot)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Image{}, fmt.Errorf("test image: build.sh: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return Open(strings.TrimSpace(string(out)))
}

// Open reads a built image folder.
func Open(dir string) (Image, error) {
	im := Image{Dir: dir, Disk: filepath.Join(dir, "disk.qcow2"), Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	for _, f := range []string{"done", "disk.qcow2", "vmlinuz", "initrd.img"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return Image{}, fmt.Errorf("test image %s: %w", dir, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "build-seconds"))
	im.BuildSeconds = strings.TrimSpace(string(b))
	return im, nil
}
