package agent

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// setUserTimeout is the API dialer's Control: TCP_USER_TIMEOUT on every
// connection to the API (see UserTimeout).
func setUserTimeout(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(UserTimeout/time.Millisecond))
	}); err != nil {
		return fmt.Errorf("agent: API socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("agent: set TCP_USER_TIMEOUT on the API socket: %w", serr)
	}
	return nil
}
