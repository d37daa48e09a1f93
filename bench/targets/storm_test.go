package targets

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mdctl/mdctl/bench/rig"
)

// TestPrecompileReader byte-compiles a real unpacked tree with Debian's
// python3, as the storm does before its clock, and finds the .pyc files.
func TestPrecompileReader(t *testing.T) {
	if _, err := os.Stat(rig.Python); err != nil {
		t.Skipf("no %s", rig.Python)
	}
	root := t.TempDir()
	pkg := filepath.Join(root, readerPackages, "cloudinit")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pkg, "util.py"), []byte("X = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CLOUDINIT_ROOT", root)
	t.Setenv("PYTHONDONTWRITEBYTECODE", "1") // as the tools may run: compileall writes anyway
	if got := readerRoot(); got != root {
		t.Fatalf("readerRoot() = %q, want %q", got, root)
	}
	if _, err := precompileReader(context.Background(), rig.Python, root); err != nil {
		t.Fatal(err)
	}
	pycs, err := filepath.Glob(filepath.Join(pkg, "__pycache__", "util.*.pyc"))
	if err != nil || len(pycs) != 1 {
		t.Fatalf("compiled files %v (%v), want one util.*.pyc", pycs, err)
	}
}

func TestReaderRootFallsBack(t *testing.T) {
	t.Setenv("CLOUDINIT_ROOT", t.TempDir()) // no cloudinit inside
	if got := readerRoot(); got != "/" {
		t.Errorf("readerRoot() = %q, want / (an installed package)", got)
	}
}
