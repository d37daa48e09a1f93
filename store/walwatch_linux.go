package store

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watchWAL sends on kick (without blocking: one pending kick is enough)
// whenever the file at path is written, created or moved into place,
// until the returned stop is called. It watches the directory (inotify),
// so the file may come and go; events on other files are ignored. Without
// inotify it logs why and watches nothing: the loops' polls still find
// every change.
func watchWAL(path string, kick chan<- struct{}) (stop func()) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		slog.Warn("store: cannot watch the -wal file; changes are found by polling", "error", err)
		return func() {}
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		slog.Warn("store: cannot watch the -wal file; changes are found by polling", "path", path, "error", err)
		return func() {}
	}
	// Non-blocking, so the runtime's poller waits and Close ends a Read.
	f := os.NewFile(uintptr(fd), "inotify "+filepath.Dir(path))
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		readEvents(f, filepath.Base(path), kick)
	}()
	return func() {
		f.Close()
		<-exited
	}
}

// readEvents reads inotify events from f until it is closed, kicking once
// per read that names file (a burst of writes is one kick).
func readEvents(f *os.File, file string, kick chan<- struct{}) {
	buf := make([]byte, 16*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				slog.Warn("store: watching the -wal file stopped; changes are found by polling", "error", err)
			}
			return
		}
		if namesFile(buf[:n], file) {
			select {
			case kick <- struct{}{}:
			default: // one pending is enough
			}
		}
	}
}

// namesFile reports whether any event in buf is about file.
func namesFile(buf []byte, file string) bool {
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return false
		}
		name := buf[unix.SizeofInotifyEvent:end]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if string(name) == file || ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true
		}
		buf = buf[end:]
	}
	return false
}
