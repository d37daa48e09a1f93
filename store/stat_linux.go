package store

import (
	"errors"
	"syscall"
)

// statFile stats path without allocating (os.Stat builds a FileInfo).
// ok is false on errors other than "does not exist".
func statFile(path string) (fileStat, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileStat{}, errors.Is(err, syscall.ENOENT)
	}
	return fileStat{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim.Nano()}, true
}
