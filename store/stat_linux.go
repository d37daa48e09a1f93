package store

import (
	"os"
	"syscall"
)

// fstat stats f without allocating (f.Stat builds a FileInfo). ok is false
// when the stat failed or the file was removed.
func fstat(f *os.File) (fileStat, bool) {
	var st syscall.Stat_t
	sc, err := f.SyscallConn()
	if err != nil {
		return fileStat{}, false
	}
	var serr error
	if err := sc.Control(func(fd uintptr) { serr = syscall.Fstat(int(fd), &st) }); err != nil || serr != nil {
		return fileStat{}, false
	}
	if st.Nlink == 0 {
		return fileStat{}, false
	}
	return fileStat{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano()}, true
}
