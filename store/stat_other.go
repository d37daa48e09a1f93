//go:build !linux

package store

import "os"

// fstat stats f; without a portable link count, a removed file is noticed
// only by its size and mtime.
func fstat(f *os.File) (fileStat, bool) {
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, false
	}
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, true
}
