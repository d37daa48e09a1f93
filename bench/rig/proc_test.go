package rig

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// testdata/stat holds real /proc/PID/stat lines: constsrv after a wrk run,
// PID 1 of this machine (with reaped children's time), and a process whose
// comm is "a b) c" (spaces and a parenthesis).
func TestParseStat(t *testing.T) {
	tests := []struct {
		file string
		want ProcStat
	}{
		{"constsrv.txt", ProcStat{PID: 17120, Comm: "constsrv", PPID: 1, UTime: 151, STime: 161}},
		{"init.txt", ProcStat{PID: 1, Comm: "process_api", PPID: 0, UTime: 66, STime: 236, CUTime: 2728, CSTime: 1193}},
		{"paren.txt", ProcStat{PID: 19262, Comm: "a b) c", PPID: 19253}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "stat", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStat(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("ParseStat: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatErrors(t *testing.T) {
	for _, line := range []string{
		"",
		"12 no comm S 1",
		"x (sh) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
		"12 (sh) S 1 2 3", // too few fields
		"12 (sh) S 1 2 3 4 5 6 7 8 9 10 z 12 13 14 15", // utime not a number
	} {
		if s, err := ParseStat(line); err == nil {
			t.Errorf("ParseStat(%q) = %+v, want an error", line, s)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	tests := []struct {
		status string
		want   uint64
		bad    bool
	}{
		{"Name:\tconstsrv\nVmPeak:\t 1488440 kB\nVmHWM:\t   13160 kB\nVmRSS:\t 13160 kB\n", 13160, false},
		{"Name:\tkthreadd\nState:\tS (sleeping)\n", 0, false},
		{"VmHWM:\t 12 MB\n", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseVmHWM(tt.status)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseVmHWM(%q) = %d, %v; want %d (error %v)", tt.status, got, err, tt.want, tt.bad)
		}
	}
}

// TestTreeCountsChildren runs a real shell whose child burns CPU, and checks
// that the tree holds the child and that its ticks end up counted (live, then
// reaped into the parent's cutime).
func TestTreeCountsChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done & wait; sleep 30`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := Proc{Root: "/proc"}
	root := cmd.Process.Pid

	var sawChild bool
	var ticks uint64
	for i := 0; i < 300; i++ { // bounded: 30 s
		tree, err := p.Tree([]int{root})
		if err != nil {
			t.Fatal(err)
		}
		if len(tree) > 1 {
			sawChild = true
		}
		st, err := p.Stat(root)
		if err != nil {
			t.Fatal(err)
		}
		if st.CUTime+st.CSTime > 0 {
			ticks, err = p.TreeTicks([]int{root})
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sawChild {
		t.Errorf("never saw the child in the tree of %d", root)
	}
	if ticks == 0 {
		t.Fatalf("child's CPU time never reached the parent's cutime/cstime")
	}
	if _, err := p.Tree([]int{1 << 30}); err == nil {
		t.Errorf("Tree of a missing pid: no error")
	}
}

// TestPeakRSSReset grows this process by 128 MiB, gives it back, and checks
// that clear_refs brings VmHWM back down: without the reset the peak would
// stay above 128 MiB.
func TestPeakRSSReset(t *testing.T) {
	p := Proc{Root: "/proc"}
	self := []int{os.Getpid()}
	buf := make([]byte, 128<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	high, err := p.PeakRSS(self)
	if err != nil {
		t.Fatal(err)
	}
	if high < 128<<20 {
		t.Fatalf("peak RSS after touching 128 MiB = %d bytes", high)
	}
	runtime.KeepAlive(buf)
	buf = nil
	debug.FreeOSMemory()
	if err := p.ResetPeakRSS(self); err != nil {
		t.Fatalf("ResetPeakRSS: %v", err)
	}
	low, err := p.PeakRSS(self)
	if err != nil {
		t.Fatal(err)
	}
	if low == 0 || low > high-64<<20 {
		t.Errorf("peak RSS after reset = %d bytes, before = %d: not reset", low, high)
	}
}
