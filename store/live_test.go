package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// countingReader counts Settings reads, to show Live re-reads only when
// the generation moved.
type countingReader struct {
	Reader
	settings, generations atomic.Int32
}

func (c *countingReader) Generation(ctx context.Context) (uint64, error) {
	c.generations.Add(1)
	return c.Reader.Generation(ctx)
}

func (c *countingReader) Settings(ctx context.Context) (map[string]string, error) {
	c.settings.Add(1)
	return c.Reader.Settings(ctx)
}

func TestLive(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t)
	r := &countingReader{Reader: a}
	live := NewLive(r, map[string]string{"dhcp_domain": "override.example"})

	s0, err := live.Snapshot(ctx)
	must(t, err)
	if s0.Config.ForceMetadata || s0.Config.DHCPDomain != "override.example" || s0.Raw["nova_metadata_port"] != "8775" {
		t.Fatalf("first snapshot = %+v", s0)
	}
	settle(t, a)
	for range 3 {
		if _, err := live.Snapshot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.settings.Load(); n != 1 {
		t.Errorf("settings read %d times without a change, want 1", n)
	}

	// Another process changes settings; the next snapshot has them, and the
	// process's override still wins.
	must(t, b.SetSetting(ctx, "force_metadata", "true"))
	must(t, b.SetSetting(ctx, "dhcp_domain", "stored.example"))
	s1, err := live.Snapshot(ctx)
	must(t, err)
	if !s1.Config.ForceMetadata || s1.Raw["force_metadata"] != "true" {
		t.Errorf("setting change not picked up: %+v", s1.Config)
	}
	if s1.Config.DHCPDomain != "override.example" {
		t.Errorf("override lost: %q", s1.Config.DHCPDomain)
	}
	if s1.Generation <= s0.Generation {
		t.Errorf("generation %d → %d", s0.Generation, s1.Generation)
	}
	must(t, b.UnsetSetting(ctx, "force_metadata"))
	s2, err := live.Snapshot(ctx)
	must(t, err)
	if s2.Config.ForceMetadata {
		t.Error("unset not picked up")
	}
}

func TestLiveConcurrent(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t)
	live := NewLive(a, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := live.Snapshot(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for _, v := range []string{"1", "2", "3"} {
		must(t, b.SetSetting(ctx, "metadata_cache_expiration", v))
	}
	wg.Wait()
	s, err := live.Snapshot(ctx)
	must(t, err)
	if s.Config.CacheExpirationSeconds != 3 {
		t.Errorf("after concurrent use: %d, want 3", s.Config.CacheExpirationSeconds)
	}
}

func TestLiveBadOverride(t *testing.T) {
	s := openTest(t)
	if _, err := NewLive(s, map[string]string{"force_metadata": "maybe"}).Snapshot(context.Background()); err == nil {
		t.Error("invalid override accepted")
	}
}

// TestLiveRequestSnapshot: a request carrying its snapshot is answered with
// it, without looking at the store, even after a write; another Live's
// snapshot in the same context is not mistaken for its own.
func TestLiveRequestSnapshot(t *testing.T) {
	ctx := context.Background()
	a, b := openPair(t)
	r := &countingReader{Reader: a}
	live, other := NewLive(r, nil), NewLive(a, nil)
	s0, err := live.Snapshot(ctx)
	must(t, err)
	reqCtx := live.WithSnapshot(ctx, s0)
	must(t, b.SetSetting(ctx, "force_metadata", "true"))
	gens := r.generations.Load()
	got, err := live.Snapshot(reqCtx)
	must(t, err)
	if got.Generation != s0.Generation || got.Config.ForceMetadata {
		t.Errorf("request snapshot = gen %d force %v, want the carried gen %d", got.Generation, got.Config.ForceMetadata, s0.Generation)
	}
	if n := r.generations.Load(); n != gens {
		t.Errorf("store looked at %d times with a carried snapshot, want 0", n-gens)
	}
	fresh, err := other.Snapshot(reqCtx)
	must(t, err)
	if !fresh.Config.ForceMetadata {
		t.Error("another Live answered with this Live's request snapshot")
	}
}
