package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestTUIFlags(t *testing.T) {
	tests := []struct {
		args []string
		want func(dir string) []string
	}{
		{nil, func(dir string) []string { return []string{filepath.Join(dir, "admin.sock")} }},
		{[]string{"--server", "/a.sock", "--server", "http://10.0.0.6:8776"}, func(string) []string {
			return []string{"/a.sock", "http://10.0.0.6:8776"}
		}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		io, _, _, _ := testIO()
		f := &factory{IO: io, DataDir: dir}
		var got *tuiOptions
		cmd := newCmdTUI(f, func(_ context.Context, o *tuiOptions) error { got = o; return nil })
		cmd.SetArgs(tt.args)
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got.Servers, ",") != strings.Join(tt.want(dir), ",") || got.Trace == nil {
			t.Errorf("%v: servers %v, want %v", tt.args, got.Servers, tt.want(dir))
		}
	}
}

func TestParseTrace(t *testing.T) {
	out := `{"instance":"vm1","instance_id":"u","mode":"router","ok":false,"failed_hop":"iptables",
	 "hops":[{"name":"route","ok":true,"ms":0.4,"detail":"via qr-1","hint":""},
	         {"name":"iptables","ok":false,"ms":1.2,"detail":"no redirect","hint":"run mdctl serve"}]}`
	tr := parseTrace([]byte(out), "", errors.New("exit status 1"))
	if tr.Err != nil || tr.OK || tr.FailedHop != "iptables" || len(tr.Lines) != 2 ||
		!strings.Contains(tr.Lines[1], "FAIL iptables") || !strings.Contains(tr.Lines[1], "run mdctl serve") {
		t.Errorf("%+v", tr)
	}
	tr = parseTrace(nil, "mdctl: unknown command \"trace\"\n", errors.New("exit status 2"))
	if tr.Err == nil || !strings.Contains(tr.Err.Error(), "unknown command") {
		t.Errorf("%+v", tr)
	}
}

// TestTUISourcesFromStore: without --server, a store with several nodes
// gives one source per node, labelled with its name; a node with no
// endpoint reachable from here is kept, with why, unwatched.
func TestTUISourcesFromStore(t *testing.T) {
	dir, sockA := twoNodeStore(t)
	ctx := context.Background()
	io, _, _, _ := testIO()
	f := &factory{IO: io, DataDir: dir}
	var got *tuiOptions
	cmd := newCmdTUI(f, func(_ context.Context, o *tuiOptions) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	srcs, err := tuiSources(ctx, got)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 2 || srcs[0].Name != "node-a" || srcs[0].Addr != sockA || srcs[0].Err != nil ||
		srcs[1].Name != "node-b" || srcs[1].Addr != "" || srcs[1].Err == nil {
		t.Errorf("sources %+v", srcs)
	}

	// --server is watched as given, whatever the store holds.
	got.Discover, got.Servers = false, []string{"/a.sock"}
	if srcs, _ := tuiSources(ctx, got); len(srcs) != 1 || srcs[0].Addr != "/a.sock" || srcs[0].Label() != "/a.sock" {
		t.Errorf("--server sources %+v", srcs)
	}
}
