package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/mdctl/mdctl/server/admin"
)

// The full fault matrix lives in diag; here: the command's contract (exit
// codes, JSON shape, the one-line error) on what needs no namespaces.
func TestTraceCommandContract(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, dir, "settings: {force_metadata: false}\n", "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply of a settings-only file: %d %s", code, errOut)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown instance", []string{"trace", "nope"}, exitFail, `trace nope:`},
		{"unknown instance json", []string{"trace", "nope", "--json"}, exitFail, `trace nope:`},
		{"no instance", []string{"trace"}, exitUsage, "one INSTANCE"},
		{"bad --set", []string{"trace", "vm1", "--set", "force_metadata=maybe"}, exitUsage, "allowed: true/false, yes/no, on/off, 1/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, dir, "", tt.args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.wantCode, tt.wantErr)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("error is more than one line: %q", errOut)
			}
			if strings.HasSuffix(tt.name, "json") {
				var r map[string]any
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					t.Fatalf("--json printed %q: %v", out, err)
				}
				for _, k := range []string{"instance", "instance_id", "mode", "ok", "failed_hop", "hops"} {
					if _, ok := r[k]; !ok {
						t.Errorf("--json lacks %q: %s", k, out)
					}
				}
				if r["ok"] != false {
					t.Errorf("ok = %v for an unknown instance", r["ok"])
				}
			}
		})
	}
}

// TestWithServeOverrides: trace checks the running serve's --set values,
// its own --set winning, and never a masked secret as if it were one.
func TestWithServeOverrides(t *testing.T) {
	serve := map[string]string{"nova_metadata_port": "18775", "metadata_proxy_shared_secret": admin.Masked, "metadata_workers": "4"}
	own := map[string]string{"metadata_workers": "2"}
	got, notes := withServeOverrides(serve, own)
	want := map[string]string{"nova_metadata_port": "18775", "metadata_workers": "2"}
	if !maps.Equal(got, want) {
		t.Errorf("overrides %v, want %v", got, want)
	}
	if len(notes) != 3 || !strings.Contains(notes[0], "metadata_proxy_shared_secret (a secret, not shown)") ||
		strings.Contains(strings.Join(notes, "\n"), admin.Masked) {
		t.Errorf("notes %q", notes)
	}
}
