package rig

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcStat is the part of /proc/PID/stat the rig needs. Times are in clock
// ticks (USER_HZ).
type ProcStat struct {
	PID    int
	Comm   string
	PPID   int
	UTime  uint64 // user time of this process (all its threads)
	STime  uint64 // system time of this process
	CUTime uint64 // user time of children it has waited for
	CSTime uint64 // system time of children it has waited for
}

// Ticks is the process's own CPU time plus that of its reaped children, so a
// short-lived child (a CGI, a worker that exited) is still counted once its
// parent has waited for it.
func (s ProcStat) Ticks() uint64 { return s.UTime + s.STime + s.CUTime + s.CSTime }

// ParseStat parses one /proc/PID/stat line. comm may hold spaces and ')' so
// the fields are counted from the last ')'.
func ParseStat(line string) (ProcStat, error) {
	open := strings.IndexByte(line, '(')
	closing := strings.LastIndexByte(line, ')')
	if open < 0 || closing < open {
		return ProcStat{}, fmt.Errorf("parse stat %q: no (comm)", truncate(line))
	}
	var s ProcStat
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return ProcStat{}, fmt.Errorf("parse stat pid: %w", err)
	}
	s.PID = pid
	s.Comm = line[open+1 : closing]
	// fields[0] is field 3 (state) of proc(5); field n is fields[n-3].
	fields := strings.Fields(line[closing+1:])
	if len(fields) < 15 {
		return ProcStat{}, fmt.Errorf("parse stat of pid %d: %d fields after comm, want >= 15", pid, len(fields))
	}
	ppid, err := strconv.Atoi(fields[4-3])
	if err != nil {
		return ProcStat{}, fmt.Errorf("parse stat of pid %d: ppid: %w", pid, err)
	}
	s.PPID = ppid
	for i, dst := range []*uint64{&s.UTime, &s.STime, &s.CUTime, &s.CSTime} {
		n := 14 + i // utime is field 14, then stime, cutime, cstime
		v, err := strconv.ParseInt(fields[n-3], 10, 64)
		if err != nil {
			return ProcStat{}, fmt.Errorf("parse stat of pid %d: field %d: %w", pid, n, err)
		}
		if v < 0 { // cutime/cstime are signed in the kernel; never negative in practice
			v = 0
		}
		*dst = uint64(v)
	}
	return s, nil
}

// Proc reads process information under a /proc root (a parameter so tests
// can point it elsewhere; the rig uses "/proc").
type Proc struct {
	Root string
}

// Stat reads and parses /proc/PID/stat.
func (p Proc) Stat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return ProcStat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return ParseStat(string(bytes.TrimSpace(b)))
}

// Tree returns the stats of roots and every live descendant. Processes that
// vanish while the tree is read are skipped: their time shows up in their
// parent's cutime/cstime once reaped.
func (p Proc) Tree(roots []int) ([]ProcStat, error) {
	entries, err := os.ReadDir(p.Root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", p.Root, err)
	}
	children := map[int][]ProcStat{}
	all := map[int]ProcStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := p.Stat(pid)
		if err != nil {
			continue // exited meanwhile
		}
		all[pid] = s
		children[s.PPID] = append(children[s.PPID], s)
	}
	var out []ProcStat
	seen := map[int]bool{}
	queue := []int{}
	for _, r := range roots {
		s, ok := all[r]
		if !ok {
			return nil, fmt.Errorf("process %d is gone", r)
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, s)
			queue = append(queue, r)
		}
	}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			if !seen[c.PID] {
				seen[c.PID] = true
				out = append(out, c)
				queue = append(queue, c.PID)
			}
		}
	}
	return out, nil
}

// TreeTicks sums Ticks over the process tree rooted at roots.
func (p Proc) TreeTicks(roots []int) (uint64, error) {
	tree, err := p.Tree(roots)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, s := range tree {
		sum += s.Ticks()
	}
	return sum, nil
}

// ResetPeakRSS writes 5 to clear_refs of every process in the tree, which
// resets VmHWM to the current RSS, so the next read is the peak of the run.
func (p Proc) ResetPeakRSS(roots []int) error {
	tree, err := p.Tree(roots)
	if err != nil {
		return err
	}
	for _, s := range tree {
		path := filepath.Join(p.Root, strconv.Itoa(s.PID), "clear_refs")
		if err := os.WriteFile(path, []byte("5"), 0); err != nil {
			return fmt.Errorf("reset peak RSS of pid %d (%s): %w", s.PID, s.Comm, err)
		}
	}
	return nil
}

// PeakRSS sums VmHWM (bytes) over the tree. A sum of per-process peaks can
// exceed the true simultaneous peak; for the single-process servers measured
// here it is exact.
func (p Proc) PeakRSS(roots []int) (uint64, error) {
	tree, err := p.Tree(roots)
	if err != nil {
		return 0, err
	}
	var sum uint64
	for _, s := range tree {
		b, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(s.PID), "status"))
		if err != nil {
			continue // exited meanwhile
		}
		kb, err := ParseVmHWM(string(b))
		if err != nil {
			return 0, fmt.Errorf("pid %d (%s): %w", s.PID, s.Comm, err)
		}
		sum += kb * 1024
	}
	return sum, nil
}

// ParseVmHWM returns the VmHWM line of /proc/PID/status in kB. Kernel threads
// and zombies have none: 0.
func ParseVmHWM(status string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse VmHWM %q", rest)
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse VmHWM %q: %w", rest, err)
		}
		return v, nil
	}
	return 0, nil
}

// ClockTicks returns USER_HZ, the unit of /proc/PID/stat times. Go cannot
// call sysconf without cgo, so ask getconf; every Linux port the rig runs on
// uses 100 when getconf is missing.
func ClockTicks() uint64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
