package rig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The testdata files are real wrk 4.1.0 (Debian) outputs captured on the
// bench machine: with and without the rig's done() line, against a refused
// port, and against nova without signed headers (403s, some timeouts).
func TestParseWrk(t *testing.T) {
	us := time.Microsecond
	tests := []struct {
		file    string
		want    WrkResult
		wantErr string
	}{
		{file: "close.txt", want: WrkResult{
			Requests: 19787, Duration: 2045244 * us, ReqPerSec: 9674.64,
			P50: 3911 * us, P99: 113277 * us,
		}},
		{file: "keepalive.txt", want: WrkResult{
			Requests: 54961, Duration: 2032926 * us, ReqPerSec: 27035.42,
			P50: 1888 * us, P99: 43838 * us,
		}},
		{file: "plain.txt", want: WrkResult{ // no Lua script: text figures only
			Requests: 48772, Duration: 2010 * time.Millisecond, ReqPerSec: 24215.32,
			P50: 2100 * us, P99: 40560 * us,
		}},
		{file: "nova403.txt", want: WrkResult{
			Requests: 2367, Duration: 1107732 * us, ReqPerSec: 2136.80,
			P50: 1101 * us, P99: 651648 * us, ErrStatus: 2367,
		}},
		{file: "timeouts.txt", want: WrkResult{
			Requests: 4695, Duration: 2099893 * us, ReqPerSec: 2235.83,
			P50: 456 * us, P99: 816248 * us, ErrStatus: 4695, ErrTimeout: 22,
		}},
		{file: "refused.txt", wantErr: "no summary"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "wrk", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseWrk(string(b))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWrk error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseWrk: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseWrk =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

// The text-only parser must agree with the done() line on the same output
// (to wrk's rounding), so a run without the hook is still trustworthy.
func TestParseWrkTextMatchesDoneLine(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "wrk", "timeouts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, doneLine) {
			text = append(text, l)
		}
	}
	fromText, err := ParseWrk(strings.Join(text, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	fromDone, err := ParseWrk(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if fromText.Requests != fromDone.Requests || fromText.ErrStatus != fromDone.ErrStatus || fromText.ErrTimeout != fromDone.ErrTimeout {
		t.Errorf("counts differ: text %+v, done %+v", fromText, fromDone)
	}
	for _, d := range []struct {
		name string
		a, b time.Duration
	}{
		{"p50", fromText.P50, fromDone.P50}, {"p99", fromText.P99, fromDone.P99}, {"duration", fromText.Duration, fromDone.Duration},
	} {
		diff := d.a - d.b
		if diff < 0 {
			diff = -diff
		}
		if diff > 10*time.Millisecond || float64(diff) > 0.01*float64(d.b) {
			t.Errorf("%s: text %v, done line %v", d.name, d.a, d.b)
		}
	}
}

func TestParseWrkDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"580.00us", 580 * time.Microsecond},
		{"1.20ms", 1200 * time.Microsecond},
		{"2.05s", 2050 * time.Millisecond},
		{"1.50m", 90 * time.Second},
		{"1.00h", time.Hour},
	}
	for _, tt := range tests {
		got, err := parseWrkDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "12", "abcms", "1.2ns"} {
		if _, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q): no error", bad)
		}
	}
}

func TestLuaScript(t *testing.T) {
	ka, cl := LuaScript(KeepAlive), LuaScript(Close)
	if strings.Contains(ka, "Connection") {
		t.Errorf("keep-alive script sets Connection:\n%s", ka)
	}
	if !strings.Contains(cl, `wrk.headers["Connection"] = "close"`) {
		t.Errorf("close script does not set Connection: close:\n%s", cl)
	}
	for _, s := range []string{ka, cl} {
		if !strings.Contains(s, doneLine) || !strings.Contains(s, "done = function") {
			t.Errorf("script has no done() hook printing %q:\n%s", doneLine, s)
		}
	}
}
