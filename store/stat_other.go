//go:build !linux

package store

import (
	"errors"
	"io/fs"
	"os"
)

// statFile stats path; ok is false on errors other than "does not exist".
// Without an inode number, size and mtime carry the key.
func statFile(path string) (fileStat, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, errors.Is(err, fs.ErrNotExist)
	}
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano()}, true
}
