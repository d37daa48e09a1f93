package server

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/pgtest"
	"github.com/mdctl/mdctl/store"
)

// TestStoreWatchWakesOnChange: a reconciling loop over one store handle
// (a serve) runs its full pass when another handle (another node, or
// `mdctl config set`) writes, without waiting for its poll, which here
// is an hour: only the change feed can wake it. PostgreSQL's two handles
// are two nodes on one database; SQLite's, two processes on one file.
func TestStoreWatchWakesOnChange(t *testing.T) {
	backends := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "mdctl.db") }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t).NewDB(t) }},
	}
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) {
			url := bk.url(t)
			open := func() store.Store {
				s, err := store.Open(t.TempDir(), url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			writer, watched := open(), open()
			ctx, cancel := context.WithCancel(context.Background())
			passes := make(chan store.Config, 16)
			done := make(chan error, 1)
			go func() {
				done <- storeWatch{
					live: store.NewLive(watched, nil), poll: time.Hour,
					full:   func(_ context.Context, cfg store.Config) error { passes <- cfg; return nil },
					tick:   func(context.Context) error { return errors.New("tick without a poll") },
					report: func(err error) { passErr(t, err) },
				}.run(ctx)
			}()
			t.Cleanup(func() { cancel(); <-done })
			waitPass(t, passes, "the first pass")
			for _, domain := range []string{"a.example.org", "b.example.org", "c.example.org"} {
				time.Sleep(2 * watchGap) // the figure is the wake's, not the gap's
				start := time.Now()
				if err := writer.SetSetting(context.Background(), "dhcp_domain", domain); err != nil {
					t.Fatal(err)
				}
				wrote := time.Now()
				cfg := waitPass(t, passes, "a pass after dhcp_domain="+domain)
				t.Logf("%s: full pass %v after the write began (write took %v)", bk.name, time.Since(start), wrote.Sub(start))
				if cfg.DHCPDomain != domain {
					t.Fatalf("pass planned with dhcp_domain %q, want %q", cfg.DHCPDomain, domain)
				}
			}
		})
	}
}

func passErr(t *testing.T, err error) {
	if err != nil {
		t.Error(err)
	}
}

// waitPass waits (bounded) for the next full pass.
func waitPass(t *testing.T, passes <-chan store.Config, what string) store.Config {
	t.Helper()
	select {
	case cfg := <-passes:
		return cfg
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s (the poll is an hour: the change feed never woke the loop)", what)
		return store.Config{}
	}
}
