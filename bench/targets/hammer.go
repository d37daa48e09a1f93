package targets

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/store"
)

// Hammer is the hostile-neighbour scenario's name.
const Hammer = "hammer"

const (
	// hammerSecs is how long the hog's wrk runs; the victim's crawls fall
	// inside it, after hammerRamp.
	hammerSecs = 8
	hammerRamp = 1500 * time.Millisecond
	// hammerConns is the hog's connections: below the per-source cap
	// (metadata_proxy_conns_per_source, 32), so what it meets is the rate
	// limit, not the connection cap.
	hammerConns = 16
	// hammerCrawls is how many crawls are timed alone and under the
	// hammer; the median of each is reported.
	hammerCrawls = 5
)

// HammerScenario is one guest hammering its proxy (wrk as fast as it
// goes, rate limits at serve's defaults) while a second guest of the same
// router runs cloud-init's OpenStack crawl: the hog's share of 429s, and
// the victim's crawl time under the hammer against alone.
func HammerScenario() rig.Scenario {
	return rig.Scenario{
		Name:  Hammer,
		Needs: append(labNeeds(), rig.NeedBinary("/usr/bin/python3", "apt-get install -y python3")),
		Run: func(ctx context.Context, env *rig.Env) ([]rig.Finding, error) {
			_, root, err := reader(ctx)
			if err != nil {
				return nil, err
			}
			if _, err := precompileReader(ctx, env.Tools.Python, root); err != nil {
				return nil, err
			}
			w, err := startLab(ctx, env, "", 10, func(i int) bool { return i < 2 })
			if err != nil {
				return nil, err
			}
			if len(w.guests) != 2 {
				return nil, fmt.Errorf("hammer: %d guests, want 2", len(w.guests))
			}
			if err := defaultRateLimits(ctx, filepath.Join(env.Dir, "data", "mdctl.db")); err != nil {
				return nil, err
			}
			if err := w.waitServing(ctx, env, w.guests); err != nil {
				return nil, err
			}
			hog, victim := w.guests[0], w.guests[1]
			alone, err := crawlTimes(ctx, env, root, victim)
			if err != nil {
				return nil, err
			}

			script := filepath.Join(env.Dir, "hammer.lua")
			if err := os.WriteFile(script, []byte(rig.LuaScript(rig.KeepAlive)), 0o644); err != nil {
				return nil, err
			}
			argv := append(hog.Prefix(), env.Tools.Taskset, "-c", env.Tools.LoadCPU, env.Tools.Wrk,
				"-t", "1", "-c", strconv.Itoa(hammerConns), "-d", strconv.Itoa(hammerSecs)+"s", "--timeout", "5s", "--latency", "-s", script,
				metadataURL+PathInstanceID)
			wrk := exec.CommandContext(ctx, argv[0], argv[1:]...)
			outc := make(chan []byte, 1)
			errc := make(chan error, 1)
			go func() {
				out, err := wrk.CombinedOutput()
				outc <- out
				errc <- err
			}()
			time.Sleep(hammerRamp)
			under, crawlErr := crawlTimes(ctx, env, root, victim)
			out, wrkErr := <-outc, <-errc
			if wrkErr != nil {
				return nil, fmt.Errorf("hog's wrk: %w: %s", wrkErr, truncateText(string(out)))
			}
			if crawlErr != nil {
				return nil, crawlErr
			}
			res, err := rig.ParseWrk(string(out))
			if err != nil {
				return nil, fmt.Errorf("hog's wrk: %w", err)
			}
			share := 0.0
			if res.Requests > 0 {
				share = 100 * float64(res.ErrStatus) / float64(res.Requests)
			}
			a, u := median(alone.times), median(under.times)
			return []rig.Finding{
				{
					Name:  "hammer: one guest floods its proxy, share of its requests refused with 429",
					Value: fmt.Sprintf("%.1f%% of %d (%.0f req/s answered)", share, res.Requests, res.ReqPerSec),
					Goal:  "most refused", Met: rig.Judge(share > 50),
					Detail: fmt.Sprintf("wrk -c%d for %d s in the hog's namespace, GET %s; serve's default limits (burst 500/1 s, base 1000/10 s per source), so past its first second nearly every request is a 429",
						hammerConns, hammerSecs, PathInstanceID),
				},
				{
					Name:  "hammer: the victim's cloud-init crawl, same router, under the flood vs alone",
					Value: fmt.Sprintf("%.3f s vs %.3f s alone (×%.2f), %d errors", u.Seconds(), a.Seconds(), u.Seconds()/a.Seconds(), alone.errs+under.errs),
					Goal:  "≤ 2× alone, 0 errors", Met: rig.Judge(u <= 2*a && alone.errs+under.errs == 0),
					Detail: fmt.Sprintf("median of %d crawls each (cloud-init's read_v2 in an interpreter started before the clock); the hog's 429s cost serve CPU, shared with the victim's %d requests per crawl",
						hammerCrawls, stormRequestsPerCrawl),
				},
			}, nil
		},
	}
}

// defaultRateLimits gives the lab's serve (live) the rate limits a
// deployment has by default, where startLab raises them above any load.
func defaultRateLimits(ctx context.Context, db string) error {
	st, err := store.OpenSQLite(db)
	if err != nil {
		return err
	}
	defer st.Close()
	for k := range labRateLimits {
		if err := st.UnsetSetting(ctx, k); err != nil {
			return fmt.Errorf("hammer: default %s: %w", k, err)
		}
	}
	return nil
}

// crawls is a guest's crawl times and failed crawls.
type crawls struct {
	times []time.Duration
	errs  int
}

// crawlTimes times hammerCrawls crawls of g, one after another.
func crawlTimes(ctx context.Context, env *rig.Env, root string, g labGuest) (crawls, error) {
	var c crawls
	for range hammerCrawls {
		r, err := stormReleased(ctx, env, root, []labGuest{g})
		if err != nil {
			return c, err
		}
		c.times = append(c.times, r.took)
		c.errs += r.errs
	}
	return c, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
