package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/store"
)

// TestConfigSetSaysWhereInForce: after the write, config set asks every
// node's /status for the settings generation it has in force and says, a
// line per node, where the change is in force, where a serve's own --set
// wins, where it is not yet after --wait, and which node cannot be asked.
func TestConfigSetSaysWhereInForce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Each serve's generation is what its store view has in force, as
	// serve's own is (a store.Live over the shared store).
	applies := func(overrides map[string]string) func(*admin.Options) {
		live := store.NewLive(st, overrides)
		return func(o *admin.Options) {
			o.Overrides = overrides
			o.SettingsGeneration = func(ctx context.Context) (uint64, error) {
				s, err := live.Snapshot(ctx)
				return s.Generation, err
			}
		}
	}
	before, err := st.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stuck := func(o *admin.Options) { // a serve that never sees the write
		o.SettingsGeneration = func(context.Context) (uint64, error) { return before, nil }
	}
	socks := map[string]string{}
	for name, opt := range map[string]func(*admin.Options){
		"node-a": applies(nil),
		"node-b": applies(map[string]string{"force_metadata": "false"}),
		"node-c": stuck,
	} {
		d := t.TempDir()
		startNodeAdmin(t, d, name, opt)
		socks[name] = filepath.Join(d, admin.SocketName)
	}
	socks["node-d"] = filepath.Join(t.TempDir(), admin.SocketName) // nobody serves it
	for name, sock := range socks {
		if err := st.RegisterNode(ctx, store.Node{Name: name, AdminSocket: sock}); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut := runCLI(t, dir, "", "config", "set", "--wait", "700ms", "force_metadata", "true")
	if code != exitOK || out != "force_metadata = true\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("stderr:\n%s", errOut)
	for _, want := range []string{
		"node node-a: in force (generation ",
		"node node-b: stored (generation ", "but its serve runs with --set force_metadata=false, which wins there",
		"node node-c: not in force after ", fmt.Sprintf("it has the settings of generation %d, the change is %d", before, before+1),
		"node node-d: unknown: node node-d: no admin endpoint of it answers here",
		"force_metadata: in force on 1 of 4 nodes",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}

	code, _, errOut = runCLI(t, dir, "", "config", "unset", "--wait", "0", "force_metadata")
	if code != exitOK || errOut != "" {
		t.Errorf("unset --wait 0: exit %d, stderr %q (want no asking)", code, errOut)
	}
}
