// Package sdlisten takes the sockets systemd passes a socket-activated
// service (sd_listen_fds_with_names(3)): $LISTEN_FDS descriptors from fd 3
// on, for the process $LISTEN_PID names, each named by its .socket unit's
// FileDescriptorName= in $LISTEN_FDNAMES. serve takes its API's and its
// agent's sockets from there (dist/systemd/mdctl-api.socket,
// mdctl-agent.socket), so they exist, and queue connections, before serve
// runs and while it restarts.
package sdlisten

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// firstFD is SD_LISTEN_FDS_START.
const firstFD = 3

// The variables systemd sets.
const (
	envPID   = "LISTEN_PID"
	envFDs   = "LISTEN_FDS"
	envNames = "LISTEN_FDNAMES"
)

// Listeners are the stream sockets systemd passed this process, by name;
// none (and no error) when it passed none or they are another process's
// (a $LISTEN_PID not ours: inherited from a parent that did not take
// them). The variables are unset, so that no child (dnsmasq, dhclient)
// takes them for its own. A socket passed without a name is "unknown", as
// systemd names it.
func Listeners(getenv func(string) string) (map[string]net.Listener, error) {
	pid, fds, fdNames := getenv(envPID), getenv(envFDs), getenv(envNames)
	if pid == "" || fds == "" {
		return nil, nil
	}
	for _, k := range []string{envPID, envFDs, envNames} {
		os.Unsetenv(k)
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(fds)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("socket activation: %s=%q is not a count", envFDs, fds)
	}
	names := strings.Split(fdNames, ":")
	out := map[string]net.Listener{}
	var errs error
	for i := range n {
		name := "unknown"
		if i < len(names) && names[i] != "" {
			name = names[i]
		}
		ln, err := listener(firstFD+i, name)
		switch {
		case err != nil:
			errs = errors.Join(errs, err)
		case out[name] != nil:
			ln.Close()
			errs = errors.Join(errs, fmt.Errorf("socket activation: two sockets named %q (FileDescriptorName=)", name))
		default:
			out[name] = ln
		}
	}
	if errs != nil {
		for _, ln := range out {
			ln.Close()
		}
		return nil, errs
	}
	return out, nil
}

// listener makes fd a net.Listener, closed on exec.
func listener(fd int, name string) (net.Listener, error) {
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // FileListener holds a duplicate
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("socket activation: fd %d (%s) is not a listening stream socket: %w", fd, name, err)
	}
	return ln, nil
}
