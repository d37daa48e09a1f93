package testworld

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/server/dataplane"
)

// TestCleanupRemovesEverything: a world that served and built guests
// leaves none of its namespaces once its test is over, and a stop called
// twice is harmless.
func TestCleanupRemovesEverything(t *testing.T) {
	RequireRoot(t)
	var names []string
	t.Run("world", func(t *testing.T) {
		w := New(t, RoutedTopo)
		_, stop := w.StartServe(ServeOptions{})
		guests := w.LabUp()
		if len(guests) != 2 {
			t.Fatalf("%d lab guests, want 2 (vm1, vm2)", len(guests))
		}
		router := w.RouterNS("r1")
		WaitFor(t, 10*time.Second, "serve builds "+router, func() error {
			if ok, err := dataplane.NamespaceExists(router); !ok {
				return fmt.Errorf("not there (%v)", err)
			}
			return nil
		})
		names = []string{w.Dataplane.SegmentNamespace, w.GuestNS("vm1"), w.GuestNS("vm2"), router}
		for _, ns := range names {
			if ok, err := dataplane.NamespaceExists(ns); err != nil || !ok {
				t.Fatalf("namespace %s: exists=%v %v", ns, ok, err)
			}
		}
		stop()
		stop()
	})
	for _, ns := range names {
		if ok, err := dataplane.NamespaceExists(ns); err != nil || ok {
			t.Errorf("namespace %s left after the test: exists=%v %v", ns, ok, err)
		}
	}
}

// TestModuleRoot: from this package's folder, two below the module's.
func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.HasPrefix(string(mod), "module github.com/mdctl/mdctl\n") {
		t.Fatalf("ModuleRoot %s: go.mod %q %v", root, mod, err)
	}
}
