package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
)

// startLines is the one line each component logs when it starts.
var startLines = map[string]string{
	"api":         "metadata API listening",
	"agent":       "agent listening",
	"proxy":       "proxy starting",
	"configdrive": "config drives kept",
	"admin":       "admin endpoint listening",
}

// TestServeLogs: --log-format json gives one JSON object per line, no
// line says an attribute twice, and each component says once that it
// started.
func TestServeLogs(t *testing.T) {
	testworld.RequireRoot(t) // the proxy component needs its capabilities
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, dir, topo, "apply", "-f", "-"); code != 0 {
		t.Fatal(stderr)
	}
	t.Cleanup(func() { runCLI(t, dir, "", "cleanup", "--force") })
	stop, logPath := startCLIServeLogs(t, dir, "--log-format", "json", "--log-level", "debug")
	testworld.WaitFor(t, 15*time.Second, "every component's start line", func() error {
		b, _ := os.ReadFile(logPath)
		for c, msg := range startLines {
			if !strings.Contains(string(b), `"msg":"`+msg+`"`) {
				return fmt.Errorf("%s has not logged %q yet", c, msg)
			}
		}
		return nil
	})
	code, logs := stop()
	if code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, logs)
	}
	starts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		// A key given twice would decode silently; count the keys as written.
		dec := json.NewDecoder(strings.NewReader(line))
		seen := map[string]bool{}
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %q", line)
		}
		for dec.More() {
			key, err := dec.Token()
			if err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if seen[key.(string)] {
				t.Errorf("%q says %s twice", line, key)
			}
			seen[key.(string)] = true
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
		}
		var rec struct{ Msg, Component string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if startLines[rec.Component] == rec.Msg {
			starts[rec.Component]++
		}
	}
	for c := range startLines {
		if starts[c] != 1 {
			t.Errorf("%s logged its start %d times, want once", c, starts[c])
		}
	}
}

// TestLogFlagsEverywhere: --log-level and --log-format are global, checked
// before any command runs.
func TestLogFlagsEverywhere(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--log-format", "xml", "version"}, 2, `mdctl: --log-format "xml": use text or json`},
		{[]string{"version", "--log-level", "loud"}, 2, `mdctl: --log-level "loud": use debug, info, warn or error`},
		{[]string{"--log-level", "debug", "--log-format", "json", "version"}, 0, ""},
		{[]string{"lab", "status", "--log-level", "error"}, 1, "mdctl: no store at"},
	} {
		code, _, stderr := runCLI(t, dir, "", tc.args...)
		if code != tc.code || !strings.HasPrefix(stderr, tc.err) {
			t.Errorf("%v: exit %d, %q; want %d, %q", tc.args, code, stderr, tc.code, tc.err)
		}
	}
}
