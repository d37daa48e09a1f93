package dataplane

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// LockPath serialises changes to the data plane across processes: `mdctl
// serve` reconciling and `mdctl lab up` in another shell would otherwise
// both see a namespace missing and both create it, stacking two bind
// mounts and splitting the segment in two. It sits outside /run/netns,
// which `ip netns list` would show it in.
const LockPath = "/run/mdctl-dataplane.lock"

// lock takes the data plane lock; each call opens its own file description,
// so it also serialises goroutines of one process. Not reentrant.
func lock() (unlock func(), err error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data plane lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("data plane lock %s: %w", LockPath, err)
	}
	return func() { f.Close() }, nil
}
