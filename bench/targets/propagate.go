package targets

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/store"
)

// Propagate is the change-propagation scenario's name.
const Propagate = "propagate"

const (
	// propagateTries is how many writes each figure is over.
	propagateTries = 50
	// propagateSeed is the store's size: propagation does not depend on it.
	propagateSeed = 10
	// propagateTimeout bounds one try: far above the 200 ms poll that
	// finds a change when the feed does not.
	propagateTimeout = 5 * time.Second
)

// PropagateScenario times a write on one node to its effect on another
// serve, on PostgreSQL (two hosts' view: the write's NOTIFY, the other
// serve's LISTEN) and on SQLite (two processes on one file: its -wal
// watcher). The writer is the rig's own store handle, as `mdctl config
// set` on node A is; node B is a serve (API and config drives) on the same
// store. Two effects, propagateTries writes each: a setting (dhcp_domain)
// in the hostname B's API answers, which B's caches must drop for; and an
// instance's config_drive flag in the drive B's reconciling loop writes or
// removes on disk.
func PropagateScenario() rig.Scenario {
	return rig.Scenario{
		Name:  Propagate,
		Needs: []rig.Requirement{needPostgres()},
		Run: func(ctx context.Context, env *rig.Env) ([]rig.Finding, error) {
			pg, err := startPostgres(env, "propagate")
			if err != nil {
				return nil, err
			}
			var out []rig.Finding
			for _, b := range []struct{ name, url string }{
				{"postgres", pg.URL},
				{"sqlite", filepath.Join(env.Dir, "sqlite", "mdctl.db")},
			} {
				f, err := propagateOn(ctx, env, b.name, b.url)
				if err != nil {
					return out, fmt.Errorf("%s: %w", b.name, err)
				}
				out = append(out, f...)
			}
			return out, nil
		},
	}
}

// propagateOn runs both measurements on the store at url.
func propagateOn(ctx context.Context, env *rig.Env, backend, url string) ([]rig.Finding, error) {
	dataDir := filepath.Join(env.Dir, backend+"-node-b")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	st, err := store.Open(env.Dir, url)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	inst, err := Seed(ctx, st, propagateSeed)
	if err != nil {
		return nil, err
	}
	addr, err := rig.FreeAddr()
	if err != nil {
		return nil, err
	}
	if _, err := env.SpawnSelf(backend+"-node-b", nil, MdctlServe, "-db", url, "-data-dir", dataDir, "-api-listen", addr,
		"-node", "mdbench-b", "-components", server.ComponentAPI+","+server.ComponentConfigDrive); err != nil {
		return nil, err
	}
	hostURL := "http://" + addr + "/latest/meta-data/hostname"
	headers := inst.Headers(SharedSecret)
	if err := env.WaitReady(ctx, hostURL, headers, startTimeout); err != nil {
		return nil, err
	}
	snap, err := store.NewLive(st, nil).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	drive := server.ConfigDrivePath(filepath.Join(dataDir, server.ConfigDrivesDirName), inst.ID, snap.Config.ConfigDriveFormat)

	answers, err := timeTries(ctx, func(i int) (func() (bool, error), error) {
		domain := fmt.Sprintf("p%d.example.org", i)
		if err := st.SetSetting(ctx, "dhcp_domain", domain); err != nil {
			return nil, err
		}
		return func() (bool, error) {
			body, err := rig.Get(ctx, propagateClient, hostURL, headers)
			return strings.HasSuffix(body, "."+domain), err
		}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("setting to the API's answer: %w", err)
	}
	drives, err := timeTries(ctx, func(i int) (func() (bool, error), error) {
		in, err := st.GetInstance(ctx, inst.ID)
		if err != nil {
			return nil, err
		}
		in.ConfigDrive = !in.ConfigDrive
		if err := st.PutInstance(ctx, in); err != nil {
			return nil, err
		}
		return func() (bool, error) {
			_, err := os.Stat(drive)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return false, err
			}
			return (err == nil) == in.ConfigDrive, nil
		}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("instance write to the config drive: %w", err)
	}
	finding := func(what string, ds []time.Duration, detail string) rig.Finding {
		p50, p99 := quantile(ds, 0.5), quantile(ds, 0.99)
		return rig.Finding{
			Name:  fmt.Sprintf("propagate (%s): %s", backend, what),
			Value: fmt.Sprintf("p50 %s, p99 %s over %d", rig.FormatLatency(p50), rig.FormatLatency(p99), len(ds)),
			Goal:  "p99 < 100 ms", Met: rig.Judge(p99 < 100*time.Millisecond), Detail: detail,
		}
	}
	return []rig.Finding{
		finding("config set → another serve's answer", answers,
			"from SetSetting(dhcp_domain) through the rig's own store handle (as `mdctl config set` on another node) to node B's API answering the new hostname (GET in a loop); B drops its caches on the generation its change feed reports"),
		finding("instance write → another serve's reconcile", drives,
			"from PutInstance(config_drive toggled) to node B's config-drive loop having written or removed the drive (stat in a loop): the loop wakes on the change feed, its 200 ms poll is the fallback"),
	}, nil
}

// timeTries runs propagateTries tries: write(i) writes and returns the
// check that its effect is seen, which is called until true; each try's
// time from just before the write to the first true check. Tries are
// spaced by a random 20–50 ms, out of step with any poll.
func timeTries(ctx context.Context, write func(i int) (func() (bool, error), error)) ([]time.Duration, error) {
	var out []time.Duration
	for i := range propagateTries {
		if err := sleepCtx(ctx, time.Duration(20+rand.IntN(30))*time.Millisecond); err != nil {
			return nil, err
		}
		start := time.Now()
		seen, err := write(i)
		if err != nil {
			return nil, fmt.Errorf("try %d: write: %w", i, err)
		}
		for {
			ok, err := seen()
			if err != nil {
				return nil, fmt.Errorf("try %d: %w", i, err)
			}
			if ok {
				break
			}
			if time.Since(start) > propagateTimeout {
				return nil, fmt.Errorf("try %d: not seen %v after the write", i, propagateTimeout)
			}
			time.Sleep(100 * time.Microsecond)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

var propagateClient = &http.Client{Timeout: 2 * time.Second}

// quantile is the q-quantile of ds (nearest rank); 0 for none.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// sleepCtx sleeps for d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
