// Package sockopt sets the socket options Go's net.Dialer has no field
// for, on the dialers of mdctl's connections to peers that may go silent
// (the agent's to the API, the store's to PostgreSQL).
package sockopt

import (
	"strings"
	"syscall"
	"time"
)

// UserTimeout returns a net.Dialer Control that sets TCP_USER_TIMEOUT to d
// on a TCP socket: data (or a keepalive probe) unacknowledged for d kills
// the connection, so a peer gone silent (powered off, cut off by a
// partition, packets dropped) is noticed in seconds instead of after the
// kernel's ~15 minutes of retransmissions. Other networks (a unix socket)
// are left alone, as is every socket where the option does not exist.
func UserTimeout(d time.Duration) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil
		}
		return setUserTimeout(c, address, d)
	}
}
