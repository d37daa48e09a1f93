// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): one
// datagram of newline-separated KEY=VALUE assignments to the unix socket
// named by $NOTIFY_SOCKET, so a Type=notify unit knows when mdctl serve is
// ready and when it stops. It does nothing when no socket is named, and
// never starts or talks to anything else.
package sdnotify

import (
	"fmt"
	"net"
	"strings"
)

// States serve sends.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
)

// Notify sends state to socket (the value of $NOTIFY_SOCKET; a leading @
// names an abstract socket). An empty socket sends nothing and is no
// error: serve was not started by systemd.
func Notify(socket, state string) error {
	if socket == "" {
		return nil
	}
	if strings.HasPrefix(socket, "@") {
		socket = "\x00" + socket[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s: %w", strings.TrimPrefix(socket, "\x00"), err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return nil
}
