package store

import (
	"strings"
	"testing"
)

// TestExists: a SQLite store exists when its file does; a PostgreSQL
// database always counts (Open tells whether it answers).
func TestExists(t *testing.T) {
	dir := t.TempDir()
	if ok, path, err := Exists(dir, ""); ok || err != nil || path != dir+"/mdctl.db" {
		t.Errorf("empty dir: %v %q %v", ok, path, err)
	}
	st, err := Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if ok, _, err := Exists(dir, ""); !ok || err != nil {
		t.Errorf("after Open: %v %v", ok, err)
	}
	if ok, shown, err := Exists(dir, "postgres://u:pw@db.example/mdctl"); !ok || err != nil || strings.Contains(shown, "pw") {
		t.Errorf("postgres: %v %q %v", ok, shown, err)
	}
}
