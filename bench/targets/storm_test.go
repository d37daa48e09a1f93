package targets

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/internal/judge"
)

// TestPrecompileReader byte-compiles a real unpacked tree with Debian's
// python3, as the storm does before its clock, and finds the .pyc files.
func TestPrecompileReader(t *testing.T) {
	if _, err := os.Stat(rig.Python); err != nil {
		t.Skipf("no %s", rig.Python)
	}
	root := t.TempDir()
	pkg := filepath.Join(root, judge.Packages, "cloudinit")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "util.py"), []byte("X = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(judge.RootEnv(defaultJudge(t)), root)
	t.Setenv("PYTHONDONTWRITEBYTECODE", "1") // as the tools may run: compileall writes anyway
	if _, got, err := reader(context.Background()); err != nil || got != root {
		t.Fatalf("reader() root = %q, %v; want %q", got, err, root)
	}
	if _, err := precompileReader(context.Background(), rig.Python, root); err != nil {
		t.Fatal(err)
	}
	pycs, err := filepath.Glob(filepath.Join(pkg, "__pycache__", "util.*.pyc"))
	if err != nil || len(pycs) != 1 {
		t.Fatalf("compiled files %v (%v), want one util.*.pyc", pycs, err)
	}
}

// TestReaderNotSetUp: a judge's root without cloud-init is an error that
// says how to set it up, not a storm of failing crawls.
func TestReaderNotSetUp(t *testing.T) {
	t.Setenv(judge.RootEnv(defaultJudge(t)), t.TempDir()) // no cloudinit inside
	if _, _, err := reader(context.Background()); err == nil || !strings.Contains(err.Error(), "make test-deps") {
		t.Errorf("reader() on an empty root: %v, want an error naming make test-deps", err)
	}
}

func defaultJudge(t *testing.T) string {
	t.Helper()
	root, err := judge.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	vs, err := judge.Versions(root)
	if err != nil {
		t.Fatal(err)
	}
	return vs[0]
}
