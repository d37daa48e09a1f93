package targets

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/internal/pgtest"
)

// TestPropagateScenario runs the scenario for real (PostgreSQL and SQLite,
// node B a child serve of this test binary) and checks it reports its four
// figures; the figures themselves are only logged.
func TestPropagateScenario(t *testing.T) {
	if _, err := pgtest.Bin(); err != nil {
		if os.Getenv(pgtest.SkipEnv) == "skip" {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env, err := rig.NewEnv(t.TempDir(), Propagate, rig.Tools{Taskset: taskset, Self: self, ServerCPU: "0", LoadCPU: "0"},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	finds, err := PropagateScenario().Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if len(finds) != 4 {
		t.Fatalf("%d findings, want 4: %+v", len(finds), finds)
	}
	for _, f := range finds {
		t.Logf("%s: %s (%s)", f.Name, f.Value, f.Goal)
		if !strings.HasPrefix(f.Value, "p50 ") || !strings.Contains(f.Value, "over 50") {
			t.Errorf("%s: value %q, want p50/p99 over 50 tries", f.Name, f.Value)
		}
	}
}
