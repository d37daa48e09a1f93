package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/configdrive"
	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/server/vendordata"
	"github.com/mdctl/mdctl/store"
)

// ComponentConfigDrive keeps a config drive for every instance that needs one.
const ComponentConfigDrive = "configdrive"

// ConfigDrivesDirName is the folder in the data dir that holds the drives.
const ConfigDrivesDirName = "config-drives"

// configDriveResync bounds how long a change the store cannot see (an
// edited vendordata file, a drive deleted by hand) goes unnoticed.
const configDriveResync = 30 * time.Second

// NeedsConfigDrive says whether nova would give inst a config drive under
// cfg: asked for per instance, or forced for all.
func NeedsConfigDrive(inst store.Instance, cfg store.Config) bool {
	return inst.ConfigDrive || cfg.ForceConfigDrive
}

// ConfigDrivePath is where serve keeps an instance's drive: <uuid>.iso for
// iso9660 and <uuid>.img for vfat, in dir.
func ConfigDrivePath(dir, instanceID, format string) string {
	return filepath.Join(dir, instanceID+configDriveExt(format))
}

func configDriveExt(format string) string {
	if format == configdrive.FormatVFAT {
		return ".img"
	}
	return ".iso"
}

// ConfigDriveFiles builds an instance's drive contents with the settings in
// force, through server/metadata as the API does: admin_pass included,
// the StaticJSON vendor data read through readFile (os.ReadFile in
// production), and dynamic the DynamicJSON services' answers (from
// vendordata.Fetcher; nil for none). rand is random_seed's source; nil
// means crypto/rand.
func ConfigDriveFiles(view store.InstanceView, cfg store.Config, readFile func(string) ([]byte, error), dynamic []metadata.VendorAnswer, now time.Time, rand io.Reader) ([]metadata.File, error) {
	o, err := metadata.OptionsFromConfig(cfg, readFile)
	if err != nil {
		return nil, fmt.Errorf("config drive of %s: %w", view.Instance.ID, err)
	}
	o.Now, o.ForConfigDrive, o.Rand, o.DynamicVendor = now, true, rand, dynamic
	md, err := metadata.Build(view, o)
	if err != nil {
		return nil, fmt.Errorf("config drive of %s: %w", view.Instance.ID, err)
	}
	return md.ConfigDriveFiles(), nil
}

// zeroRand gives random_seed fixed bytes, so two builds of unchanged data
// hash the same and a seed that changes every build causes no rebuild.
type zeroRand struct{}

func (zeroRand) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// hashFiles is a digest of a drive's paths and contents.
func hashFiles(files []metadata.File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s\n%d:", len(f.Path), f.Path, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// builtDrive is what the loop last wrote for an instance.
type builtDrive struct {
	path string
	hash string // of the files with a zero random_seed, plus the format
}

// configDriveLoop keeps <data-dir>/config-drives in step with the store:
// one image per instance that needs a drive, rebuilt when its contents or
// the format change, removed when no longer needed.
type configDriveLoop struct {
	store    store.Reader
	live     *store.Live
	dir      string
	log      *slog.Logger
	poll     time.Duration
	now      func() time.Time
	readFile func(string) ([]byte, error)
	vendor   vendordata.Fetcher

	built map[string]builtDrive // instance id → drive on disk
}

func newConfigDriveLoop(st store.Reader, live *store.Live, dataDir string, poll time.Duration, log *slog.Logger) *configDriveLoop {
	return &configDriveLoop{
		store: st, live: live, dir: filepath.Join(dataDir, ConfigDrivesDirName), log: log, poll: poll,
		now: time.Now, readFile: os.ReadFile, built: map[string]builtDrive{},
	}
}

// Run reconciles on start, on every store generation change (as the
// change feed reports it, else within one poll) and every configDriveResync; a failed pass is retried on the
// next tick.
func (l *configDriveLoop) Run(ctx context.Context) error {
	if err := os.MkdirAll(l.dir, 0o750); err != nil {
		return fmt.Errorf("config drives: %w", err)
	}
	l.sweepTemp()
	errs := errorLog{log: l.log, what: "config drives"}
	return storeWatch{
		live: l.live, poll: l.poll, resync: configDriveResync, now: l.now,
		full: l.reconcile,
		report: func(err error) {
			errs.report(err, "config drives in step", "drives", len(l.built), "dir", l.dir)
		},
	}.run(ctx)
}

// reconcile writes the drives that are missing or stale and removes the
// ones no instance needs. An instance that fails keeps its old drive.
func (l *configDriveLoop) reconcile(ctx context.Context, cfg store.Config) error {
	insts, err := l.store.ListInstances(ctx)
	if err != nil {
		return fmt.Errorf("list instances: %w", err)
	}
	keep := map[string]bool{}
	var errs []error
	for _, inst := range insts {
		if !NeedsConfigDrive(inst, cfg) {
			continue
		}
		path := ConfigDrivePath(l.dir, inst.ID, cfg.ConfigDriveFormat)
		keep[filepath.Base(path)] = true
		if err := l.ensure(ctx, inst.ID, path, cfg); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted since the listing: the next generation removes it
			}
			// Keep whatever drive it had until a build succeeds.
			if old, ok := l.built[inst.ID]; ok {
				keep[filepath.Base(old.path)] = true
			}
			errs = append(errs, err)
		}
	}
	errs = append(errs, l.removeUnwanted(keep))
	return errors.Join(errs...)
}

// ensure rebuilds one instance's drive when its contents, format or file
// changed since the last write.
func (l *configDriveLoop) ensure(ctx context.Context, id, path string, cfg store.Config) error {
	view, err := l.store.InstanceView(ctx, id)
	if err != nil {
		return fmt.Errorf("instance %s: %w", id, err)
	}
	// Asked once per pass, so the probe and the drive carry the same answers.
	dynamic, err := l.vendor.Dynamic(ctx, l.log, cfg, view.Instance)
	if err != nil {
		return fmt.Errorf("instance %s: %w", id, err)
	}
	now := l.now()
	probe, err := ConfigDriveFiles(view, cfg, l.readFile, dynamic, now, zeroRand{})
	if err != nil {
		return err
	}
	hash := hashFiles(probe) + "/" + cfg.ConfigDriveFormat
	if old, ok := l.built[id]; ok && old.hash == hash && old.path == path {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
	}
	files, err := ConfigDriveFiles(view, cfg, l.readFile, dynamic, now, nil)
	if err != nil {
		return err
	}
	if err := configdrive.WriteFile(path, cfg.ConfigDriveFormat, files); err != nil {
		return fmt.Errorf("instance %s: %w", id, err)
	}
	l.built[id] = builtDrive{path: path, hash: hash}
	l.log.Info("config drive written", "instance", id, "path", path, "format", cfg.ConfigDriveFormat)
	return nil
}

// removeUnwanted deletes drives (ours by name: <id>.iso or <id>.img) that
// are not in keep, including the other format's file after a flip.
func (l *configDriveLoop) removeUnwanted(keep map[string]bool) error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("config drives: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		id, ok := driveID(name)
		if !ok || keep[name] || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove config drive: %w", err))
			continue
		}
		if b, ok := l.built[id]; ok && filepath.Base(b.path) == name {
			delete(l.built, id)
		}
		l.log.Info("config drive removed", "instance", id, "path", filepath.Join(l.dir, name))
	}
	return errors.Join(errs...)
}

// driveID is the instance id of a drive file name (<uuid>.iso or
// <uuid>.img), ok false for any other file, which the loop leaves alone.
func driveID(name string) (string, bool) {
	for _, ext := range []string{".iso", ".img"} {
		if id, ok := strings.CutSuffix(name, ext); ok && isUUID(id) {
			return id, true
		}
	}
	return "", false
}

// isUUID accepts the canonical 8-4-4-4-12 hex form store ids take.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", c):
			return false
		}
	}
	return true
}

// sweepTemp removes temporary images a crashed writer left behind; at start
// nothing of this process is writing.
func (l *configDriveLoop) sweepTemp() {
	matches, _ := filepath.Glob(filepath.Join(l.dir, ".*.tmp-*"))
	for _, m := range matches {
		if err := os.Remove(m); err == nil {
			l.log.Info("removed a partial config drive", "path", m)
		}
	}
}
