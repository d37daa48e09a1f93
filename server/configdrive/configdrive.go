// Package configdrive writes config-drive images — iso9660 (with Rock Ridge
// and Joliet) or vfat, labelled config-2 — from the files server/metadata
// lays out, and reads such images back to report what a guest would find.
//
// It owns the filesystem formats only. It must never build metadata its own
// way: the file list always comes from metadata.(*Metadata).ConfigDriveFiles,
// so the API and the drive cannot disagree. It writes in pure Go (no
// genisoimage or mkfs at run time, unlike nova) and never mounts anything.
package configdrive

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mdctl/mdctl/server/metadata"
)

// Formats, with nova's config_drive_format names.
const (
	FormatISO9660 = "iso9660"
	FormatVFAT    = "vfat"
)

// Label is the volume label nova gives every config drive and cloud-init
// looks for.
const Label = "config-2"

// WriteFile writes files as a config drive labelled config-2 at path in the
// given format. It writes a temporary file beside path, syncs it and renames
// it over path, so path never holds a partial image.
func WriteFile(path, format string, files []metadata.File) (err error) {
	var write func(*os.File) error
	switch format {
	case FormatISO9660:
		write = func(f *os.File) error { return WriteISO9660(f, files, Label) }
	case FormatVFAT:
		write = func(f *os.File) error { return WriteVFAT(f, files, Label) }
	default:
		return fmt.Errorf("configdrive: format %q: want %s or %s", format, FormatISO9660, FormatVFAT)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("configdrive: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	// 0600: the drive holds the admin password; only the hypervisor reads it.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("configdrive: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("configdrive: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("configdrive: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("configdrive: %w", err)
	}
	// The rename is durable only once the directory itself is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
