//go:build !linux

package sockopt

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist: a
// silent peer is then noticed by the callers' own deadlines and pings.
func setUserTimeout(syscall.RawConn, string, time.Duration) error { return nil }
