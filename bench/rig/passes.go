package rig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// RunPasses runs the whole target list passes times, one pass after the
// other, and returns for each target, mode and path the run with the
// median req/s. On a shared machine a noisy minute then spoils one pass of
// every target rather than every run of one target, and the median drops
// it: ratios between targets come from runs minutes apart, so this is what
// keeps them honest. Event-stream pairs and the targets' own findings come
// from the last pass only (pairs interleave on their own).
func RunPasses(ctx context.Context, cfg Config, targets []Target, passes int) ([]Row, []Finding, []Failure) {
	passes = max(passes, 1)
	var all [][]Row
	var finds []Finding
	var fails []Failure
	for i := range passes {
		pc := cfg
		if i < passes-1 {
			pc.Pairs.Duration = 0
		}
		if passes > 1 {
			// Each pass starts its targets afresh: a store seeded by the
			// last pass must not be found again.
			pc.Scratch = filepath.Join(cfg.Scratch, fmt.Sprintf("pass%d", i+1))
			if err := os.MkdirAll(pc.Scratch, 0o755); err != nil {
				return nil, finds, append(fails, Failure{"all", fmt.Errorf("pass %d: %w", i+1, err)})
			}
			cfg.Log.Info("pass", "n", i+1, "of", passes)
		}
		rows, f, fl := Run(ctx, pc, targets)
		all = append(all, rows)
		finds = f
		fails = mergeFailures(fails, fl)
	}
	return MedianRows(all), finds, fails
}

// MedianRows keeps, for each target, mode and path in the order first
// seen, the row with the median req/s among the passes that measured it
// (the upper median for an even count): one real run, all its figures
// together.
func MedianRows(passes [][]Row) []Row {
	type key struct {
		target string
		mode   Mode
		path   string
	}
	var order []key
	runs := map[key][]Row{}
	for _, rows := range passes {
		for _, r := range rows {
			k := key{r.Target, r.Mode, r.Path}
			if _, ok := runs[k]; !ok {
				order = append(order, k)
			}
			runs[k] = append(runs[k], r)
		}
	}
	out := make([]Row, 0, len(order))
	for _, k := range order {
		rs := runs[k]
		slices.SortStableFunc(rs, func(a, b Row) int {
			switch {
			case a.Wrk.ReqPerSec < b.Wrk.ReqPerSec:
				return -1
			case a.Wrk.ReqPerSec > b.Wrk.ReqPerSec:
				return 1
			}
			return 0
		})
		out = append(out, rs[len(rs)/2])
	}
	return out
}

// mergeFailures adds the failures of one pass, one per target.
func mergeFailures(acc, more []Failure) []Failure {
	for _, f := range more {
		if !slices.ContainsFunc(acc, func(a Failure) bool { return a.Target == f.Target }) {
			acc = append(acc, f)
		}
	}
	return acc
}
