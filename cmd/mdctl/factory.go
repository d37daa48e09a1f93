package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// factory carries what commands share: the streams, the environment and
// the global flags, and opens the store on demand so that commands which
// never touch it (version, completion) never fail on it.
type factory struct {
	IO      *iostreams
	Getenv  func(string) string
	DataDir string // --data-dir, after MDCTL_DATA_DIR and the default
	DB      string // --db
	Profile string // --profile, after MDCTL_PROFILE
	// LogLevel and LogFormat are --log-level and --log-format, checked
	// before any command runs; LogLevel "" is the command's own default.
	LogLevel  string
	LogFormat string
	Version   string
}

// defaultDataDir follows CLI.md: MDCTL_DATA_DIR, else /var/lib/mdctl for
// root, else $XDG_DATA_HOME/mdctl.
func defaultDataDir(getenv func(string) string) string {
	if d := getenv("MDCTL_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/mdctl"
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "mdctl")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "mdctl")
	}
	return "mdctl"
}

// OpenStore opens the store the global flags name, which must exist:
// commands that only read or change records never create an empty one.
func (f *factory) OpenStore(ctx context.Context) (store.Store, error) {
	ok, path, err := store.Exists(f.DataDir, f.DB)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no store at %s: seed one with mdctl apply -f FILE (or point --data-dir or --db at one)", path)
	}
	return f.CreateStore(ctx)
}

// OpenStoreOrEmpty is OpenStore, or, when there is no store yet, an empty
// scratch one removed on Close: what apply --dry-run and diff compare a
// file with, so that looking never creates the operator's store.
func (f *factory) OpenStoreOrEmpty(ctx context.Context) (store.Store, error) {
	ok, _, err := store.Exists(f.DataDir, f.DB)
	if err != nil || ok {
		return f.OpenStore(ctx)
	}
	dir, err := os.MkdirTemp("", "mdctl-empty-")
	if err != nil {
		return nil, fmt.Errorf("scratch store: %w", err)
	}
	st, err := store.Open(dir, "")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return scratchStore{st, dir}, nil
}

// scratchStore is a store that disappears when closed.
type scratchStore struct {
	store.Store
	dir string
}

func (s scratchStore) Close() error {
	err := s.Store.Close()
	os.RemoveAll(s.dir)
	return err
}

// CreateStore opens the store the global flags name, creating it (the data
// dir 0700, the database 0600) when it is not there: apply, create and
// serve.
func (f *factory) CreateStore(ctx context.Context) (store.Store, error) {
	st, err := store.Open(f.DataDir, f.DB)
	if err != nil {
		return nil, fmt.Errorf("%w (check --data-dir %s or --db)", err, f.DataDir)
	}
	return st, nil
}

// withStoreFn opens a store through open, runs fn and closes it.
func withStoreFn(ctx context.Context, open func(context.Context) (store.Store, error), fn func(st store.Store) error) error {
	st, err := open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// logFormats are --log-format's values: slog's two handlers.
var logFormats = []string{"text", "json"}

// checkLogFlags refuses a bad --log-level or --log-format (exit 2).
func (f *factory) checkLogFlags() error {
	if f.LogLevel != "" {
		var l slog.Level
		if err := l.UnmarshalText([]byte(f.LogLevel)); err != nil {
			return usageErrorf("--log-level %q: use debug, info, warn or error", f.LogLevel)
		}
	}
	if !slices.Contains(logFormats, f.LogFormat) {
		return usageErrorf("--log-format %q: use %s", f.LogFormat, strings.Join(logFormats, " or "))
	}
	return nil
}

// Logger is the logger every command writes its logs with, to w (stderr):
// --log-format's handler at --log-level, or at def when none was given
// (serve logs info, the other commands only warnings).
func (f *factory) Logger(w io.Writer, def slog.Level) *slog.Logger {
	level := def
	if f.LogLevel != "" {
		_ = level.UnmarshalText([]byte(f.LogLevel)) // checked by checkLogFlags
	}
	o := &slog.HandlerOptions{Level: level}
	if f.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Dataplane names the kernel state this data dir (or --profile) owns: its
// segment namespace, owner mark, lab guests and DHCP state.
func (f *factory) Dataplane() (dataplane.Options, error) {
	o, err := dataplane.ForDataDir(f.DataDir, f.Profile)
	if err != nil {
		return o, usageErrorf("--profile: %v", err)
	}
	return o, nil
}
