//go:build !linux

package agent

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist: a
// silent replica is then noticed by answerWait alone.
func setUserTimeout(_, _ string, _ syscall.RawConn) error { return nil }
