package sockopt

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func setUserTimeout(c syscall.RawConn, address string, d time.Duration) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	}); err != nil {
		return fmt.Errorf("socket to %s: %w", address, err)
	}
	if serr != nil {
		return fmt.Errorf("set TCP_USER_TIMEOUT on the socket to %s: %w", address, serr)
	}
	return nil
}
