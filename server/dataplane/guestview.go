package dataplane

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsEtcDir holds per-namespace configuration files: `ip netns exec NAME`
// bind-mounts each /etc/netns/NAME/<file> over /etc/<file>.
const NetnsEtcDir = "/etc/netns"

// StartInGuestView starts cmd as `ip netns exec NAME` runs a command
// (iproute2's netns_switch): in the named network namespace and in a
// mount namespace of its own in which / is a recursive slave (nothing
// mounted there reaches the host), /sys is a sysfs of that network
// namespace (so /sys/class/net lists its links, not the host's: cloud-init
// finds its NIC by MAC there) and /etc/netns/NAME's files cover /etc's.
//
// The work happens on a thread that is never given back to the Go
// runtime: a thread with a mount namespace of its own cannot return to the
// process's (its fs attributes are unshared), so its goroutine exits
// locked and the runtime ends the thread.
func StartInGuestView(nsName string, cmd *exec.Cmd) error {
	return onFreshGoroutine(nsName, func(target netns.NsHandle) error {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		return startViewLocked(nsName, target, cmd)
	})
}

func startViewLocked(nsName string, target netns.NsHandle, cmd *exec.Cmd) error {
	if err := netns.Set(target); err != nil {
		return fmt.Errorf("namespace %s: enter: %w", nsName, err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("namespace %s: unshare the mount namespace: %w", nsName, err)
	}
	// Don't let any mounts propagate back to the parent.
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("namespace %s: make / a recursive slave: %w", nsName, err)
	}
	if err := mountSysfs(nsName); err != nil {
		return err
	}
	if err := bindEtc(nsName); err != nil {
		return err
	}
	return cmd.Start()
}

// mountSysfs puts a sysfs of the thread's network namespace on /sys: the
// old one is detached lazily; when it cannot be (none was mounted, or it
// is busy), the new one covers it, read-only if the old one was.
func mountSysfs(nsName string) error {
	var flags uintptr
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil {
		var st unix.Statfs_t
		if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
			flags = unix.MS_RDONLY
		}
	}
	if err := unix.Mount(nsName, "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("namespace %s: mount sysfs on /sys: %w", nsName, err)
	}
	return nil
}

// bindEtc bind-mounts /etc/netns/NAME/<file> over /etc/<file>, each file
// there, as ip netns exec does; a missing directory is no error.
func bindEtc(nsName string) error {
	dir := filepath.Join(NetnsEtcDir, nsName)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("namespace %s: %w", nsName, err)
	}
	for _, e := range entries {
		if e.Name() == "." || e.Name() == ".." {
			continue
		}
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("namespace %s: bind %s on %s: %w", nsName, src, dst, err)
		}
	}
	return nil
}
