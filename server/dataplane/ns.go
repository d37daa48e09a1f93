package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces live, as `ip netns` keeps them: each
// name is a file bind-mounted over a namespace's nsfs inode.
const NetnsDir = "/run/netns"

// nsfsMagic is the filesystem type of a namespace bind mount (NSFS_MAGIC).
const nsfsMagic = 0x6e736673

// Do runs fn on an OS thread switched into the named namespace, then switches
// the thread back. Everything fn does on its own goroutine (sockets it opens,
// processes it starts, netlink it speaks, /proc/sys/net it writes) happens in
// that namespace; goroutines fn starts do not follow it there.
//
// fn runs on a fresh goroutine whose thread is locked for the duration. If
// the thread cannot be switched back, the goroutine exits still locked, so
// the Go runtime destroys the thread instead of handing a thread in the wrong
// namespace to other goroutines, and Do reports the failure.
func Do(nsName string, fn func() error) error {
	return onFreshGoroutine(nsName, func(target netns.NsHandle) error { return doLocked(nsName, target, fn) })
}

// onFreshGoroutine opens the named namespace and runs body with it on a
// goroutine of its own, so body may lock (or never unlock) its thread.
func onFreshGoroutine(nsName string, body func(netns.NsHandle) error) error {
	target, err := openNamespace(nsName)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() { errc <- body(target) }()
	return <-errc
}

// openNamespace opens the named namespace; the caller closes the handle.
func openNamespace(nsName string) (netns.NsHandle, error) {
	if err := checkNSName(nsName); err != nil {
		return netns.None(), err
	}
	h, err := netns.GetFromPath(nsPath(nsName))
	if err != nil {
		return netns.None(), fmt.Errorf("namespace %s: open: %w", nsName, err)
	}
	return h, nil
}

// doLocked is Do's body on its own goroutine. It unlocks the thread only when
// the thread is back in the namespace it started in.
func doLocked(nsName string, target netns.NsHandle, fn func() error) error {
	runtime.LockOSThread()
	origin, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("namespace %s: read current thread's namespace: %w", nsName, err)
	}
	defer origin.Close()
	if err := netns.Set(target); err != nil {
		// setns failed, so the thread never left: safe to give back.
		runtime.UnlockOSThread()
		return fmt.Errorf("namespace %s: enter: %w", nsName, err)
	}
	fnErr := fn()
	if err := netns.Set(origin); err != nil {
		// Leave the thread locked: the runtime kills it when this goroutine ends.
		return errors.Join(fnErr, fmt.Errorf("namespace %s: switch thread back (thread discarded): %w", nsName, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// GuestListenConfig opens the listeners guests connect to. It sets no TCP
// keep-alive probes on accepted connections, as neutron's haproxy (no
// clitcpka): Go's default sets them with four setsockopt calls per
// accepted connection, about a tenth of a one-request connection's CPU,
// for probes a metadata request never lives long enough to need.
var GuestListenConfig = net.ListenConfig{KeepAlive: -1}

// ListenTCP opens a TCP listener inside the named namespace. The socket stays
// bound in that namespace after the thread switches back, which is how one
// process serves every router and DHCP namespace. addr may carry an IPv6 zone
// naming an interface of that namespace ("[fe80::a9fe:a9fe%ns-1234]:80").
func ListenTCP(nsName, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(nsName, func() error {
		var err error
		l, err = GuestListenConfig.Listen(context.Background(), network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, nsName, err)
	}
	return l, nil
}

// DialContext connects from inside the named namespace, as a guest or proxy
// there would. The connection keeps working from any goroutine afterwards.
func DialContext(ctx context.Context, nsName, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := Do(nsName, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, addr, nsName, err)
	}
	return c, nil
}

// NamespaceExists reports whether /run/netns/<name> is a live namespace
// mount (a leftover empty file, as a crashed `ip netns add` leaves, is not).
func NamespaceExists(name string) (bool, error) {
	if err := checkNSName(name); err != nil {
		return false, err
	}
	var st unix.Statfs_t
	err := unix.Statfs(nsPath(name), &st)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("namespace %s: %w", name, err)
	}
	return st.Type == nsfsMagic, nil
}

// EnsureNamespace creates the named namespace the way `ip netns add` does,
// unless it already exists. It reports whether it created it.
func EnsureNamespace(name string) (created bool, err error) {
	ok, err := NamespaceExists(name)
	if err != nil || ok {
		return false, err
	}
	if err := prepareNetnsDir(); err != nil {
		return false, err
	}
	p := nsPath(name)
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return false, fmt.Errorf("namespace %s: create mount point: %w", name, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// The thread is unshared into the new namespace and never switched
		// back: it stays locked, so the runtime discards it on return.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(p)
		return false, fmt.Errorf("namespace %s: %w", name, err)
	}
	return true, nil
}

// DeleteNamespace removes a named namespace as `ip netns delete` does. The
// namespace itself lives on while anything (a socket, a process) still holds
// it. Deleting a missing namespace is not an error.
func DeleteNamespace(name string) error {
	if err := checkNSName(name); err != nil {
		return err
	}
	p := nsPath(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("namespace %s: unmount: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("namespace %s: remove: %w", name, err)
	}
	return nil
}

// ListNamespaces returns the names under /run/netns that start with prefix.
func ListNamespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// prepareNetnsDir makes /run/netns a shared mount, as iproute2 does, so that
// namespaces mounted later show up in every mount namespace that sees it.
func prepareNetnsDir() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", NetnsDir, err)
	}
	err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", NetnsDir, err)
	}
	// Not a mount point yet: bind it onto itself, then share it.
	if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", NetnsDir, err)
	}
	if err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", NetnsDir, err)
	}
	return nil
}

func nsPath(name string) string { return filepath.Join(NetnsDir, name) }

// checkNSName refuses names that would escape /run/netns.
func checkNSName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("bad namespace name %q", name)
	}
	return nil
}
