package targets

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
)

// Storm is the boot-storm scenario's name.
const Storm = "storm"

// Storm sizing: StormGuests guests on StormNetworks of the lab's /24s.
const (
	StormGuests   = 200
	StormNetworks = 4
	// stormTimeout bounds each crawler; cloud-init's reader itself gives
	// up after timeout=5 s × (retries=1 + 1) per URL.
	stormTimeout = 3 * time.Minute
)

// crawlerPy is cloud-init's OpenStack reader exactly as cloudinit-crawl
// calls it (MetadataReader(base, timeout=5, retries=1).read_v2()), with
// the interpreter start and imports paid once before the clock starts:
// the parent imports cloud-init, then forks one child per guest namespace
// named in argv; each child joins its guest's network namespace (setns,
// as ip netns exec does), says "ready NAME", waits for one byte on stdin,
// crawls, and prints one JSON line with the instance id it got.
const crawlerPy = `import ctypes, json, os, sys
from cloudinit.sources.helpers import openstack
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
def say(line):
    os.write(1, (line + "\n").encode())
def child(name):
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns " + name)
    os.close(fd)
    say("ready " + name)
    os.read(0, 1)
    try:
        r = openstack.MetadataReader("http://169.254.169.254", timeout=5, retries=1).read_v2()
        md = r.get("metadata", {})
        say(json.dumps({"ns": name, "instance_id": md.get("uuid")}))
    except Exception as e:
        say(json.dumps({"ns": name, "error": "%s: %s" % (type(e).__name__, e)}))
pids = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            child(name)
        except Exception as e:
            say(json.dumps({"ns": name, "error": "%s: %s" % (type(e).__name__, e)}))
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
`

// StormScenario is the boot storm: StormGuests lab guests over a store of
// SeedInstances instances, each running cloud-init's OpenStack crawl at
// once through the whole chain. Two timings:
//
//   - "tool": ../shared/tools/cloudinit-crawl openstack in every guest
//     started together, until the last exits: on this 2-core machine that
//     is mostly 200 Python interpreters importing cloud-init;
//   - "released": the same reader call in 200 interpreters that have
//     already imported it, released together, until the last answer: the
//     metadata path under a storm.
//
// Every crawl must return its own instance id; anything else is an error.
func StormScenario() rig.Scenario {
	return rig.Scenario{
		Name:  Storm,
		Needs: append(labNeeds(), rig.NeedBinary("/usr/bin/python3", "apt-get install -y python3")),
		Run: func(ctx context.Context, env *rig.Env) ([]rig.Finding, error) {
			tool := filepath.Join(filepath.Dir(env.Tools.SharedDir), "tools", "cloudinit-crawl")
			if _, err := os.Stat(tool); err != nil {
				return nil, fmt.Errorf("cloud-init crawler: %w", err)
			}
			perNet := StormGuests / StormNetworks
			w, err := startLab(ctx, env, SeedInstances, func(i int) bool {
				return i/LabPerNetwork < StormNetworks && i%LabPerNetwork < perNet
			})
			if err != nil {
				return nil, err
			}
			if err := w.waitServing(ctx, env, w.guests[:1]); err != nil {
				return nil, err
			}
			proc := rig.Proc{Root: "/proc"}
			var finds []rig.Finding

			ticks0, _ := proc.TreeTicks([]int{w.pid})
			took, errs := stormTool(ctx, env.Log, tool, w.guests)
			ticks1, _ := proc.TreeTicks([]int{w.pid})
			finds = append(finds, rig.Finding{
				Name:  fmt.Sprintf("storm (tool): %d guests run cloudinit-crawl openstack at once, start to last exit", len(w.guests)),
				Value: fmt.Sprintf("%.2f s, %d errors", took.Seconds(), errs),
				Goal:  "< 5 s, 0 errors", Met: rig.Judge(took < 5*time.Second && errs == 0),
				Detail: fmt.Sprintf("includes starting %d Python interpreters that import cloud-init (≈0.4 s CPU each) on %s; serve used %.2f s CPU",
					len(w.guests), "both cores", ticksSeconds(ticks1-ticks0)),
			})

			alone, aloneErrs, err := stormReleased(ctx, env, w.guests[:1])
			if err != nil {
				return finds, err
			}
			finds = append(finds, rig.Finding{
				Name:   "storm baseline: one guest's cloud-init reader alone",
				Value:  fmt.Sprintf("%.3f s, %d errors", alone.Seconds(), aloneErrs),
				Detail: "the same reader, one guest, nothing else running: the floor of a crawl",
			})
			ticks0, _ = proc.TreeTicks([]int{w.pid})
			took, errs, crawlCPU, err := stormReleasedCPU(ctx, env, w.guests)
			if err != nil {
				return finds, err
			}
			ticks1, _ = proc.TreeTicks([]int{w.pid})
			finds = append(finds, rig.Finding{
				Name:  fmt.Sprintf("storm (released): %d guests' cloud-init readers, released at once, to last answer", len(w.guests)),
				Value: fmt.Sprintf("%.2f s, %d errors", took.Seconds(), errs),
				Goal:  "< 5 s, 0 errors", Met: rig.Judge(took < 5*time.Second && errs == 0),
				Detail: fmt.Sprintf("interpreters started and cloud-init imported before the clock; serve (pinned to CPU %s) used %.2f s CPU, the %d crawlers (unpinned, Python) %.2f s",
					env.Tools.ServerCPU, ticksSeconds(ticks1-ticks0), len(w.guests), crawlCPU.Seconds()),
			})
			return finds, nil
		},
	}
}

func ticksSeconds(t uint64) float64 { return float64(t) / float64(rig.ClockTicks()) }

// crawlResult is the part of a crawler's JSON the storm checks.
type crawlResult struct {
	InstanceID string `json:"instance_id"`
	Error      string `json:"error"`
}

// checkCrawl says whether out is guest g's own metadata.
func checkCrawl(g labGuest, out []byte, runErr error) error {
	var r crawlResult
	line := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return errors.Join(runErr, fmt.Errorf("guest %s: output %q: %w", g.NS, line, err))
	}
	switch {
	case r.Error != "":
		return fmt.Errorf("guest %s: %s", g.NS, r.Error)
	case runErr != nil:
		return fmt.Errorf("guest %s: %w", g.NS, runErr)
	case r.InstanceID != g.InstanceID:
		return fmt.Errorf("guest %s got instance %q, want %q", g.NS, r.InstanceID, g.InstanceID)
	}
	return nil
}

// stormTool starts the crawl tool in every guest at once and waits for
// the last; it returns the wall time and the number of failed crawls.
func stormTool(ctx context.Context, log *slog.Logger, tool string, guests []labGuest) (time.Duration, int) {
	ctx, cancel := context.WithTimeout(ctx, stormTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := 0
	start := time.Now()
	for _, g := range guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			argv := append(g.Prefix(), tool, "openstack")
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
			if err := checkCrawl(g, out, err); err != nil {
				mu.Lock()
				if errs++; errs == 1 {
					log.Warn("storm: crawl failed", "err", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errs
}

// stormReleased runs crawlerPy for every guest, waits until all children
// are ready in their namespaces, releases them together and times until
// the last answers.
func stormReleased(ctx context.Context, env *rig.Env, guests []labGuest) (time.Duration, int, error) {
	took, errs, _, err := stormReleasedCPU(ctx, env, guests)
	return took, errs, err
}

// stormReleasedCPU is stormReleased that also returns the CPU time the
// crawlers used (the parent's import included).
func stormReleasedCPU(ctx context.Context, env *rig.Env, guests []labGuest) (time.Duration, int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, stormTimeout)
	defer cancel()
	root := os.Getenv("CLOUDINIT_ROOT")
	if root == "" {
		root = "/opt/cloudinit-reader"
	}
	byNS := map[string]labGuest{}
	args := []string{"-c", crawlerPy}
	for _, g := range guests {
		byNS[g.NS] = g
		args = append(args, g.NS)
	}
	cmd := exec.CommandContext(ctx, env.Tools.Python, args...) // Debian's, as the crawl tool uses
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Join(root, "usr/lib/python3/dist-packages"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, fmt.Errorf("start crawlers: %w", err)
	}
	waited := false
	defer func() {
		if !waited {
			in.Close()
			_ = cmd.Wait()
		}
	}()
	out := bufio.NewScanner(outp)
	errs := 0
	var firstErr error
	fail := func(err error) {
		errs++
		if firstErr == nil {
			firstErr = err
		}
	}
	for ready := 0; ready < len(guests); {
		if !out.Scan() {
			return 0, 0, 0, fmt.Errorf("crawlers: %d of %d ready, then: %v %s", ready, len(guests), out.Err(), truncateText(stderr.String()))
		}
		if line := out.Text(); strings.HasPrefix(line, "ready ") {
			ready++
		} else {
			ready++ // a child that failed before getting ready
			fail(fmt.Errorf("crawler: %s", line))
		}
	}
	env.Log.Info("storm: crawlers ready, releasing", "guests", len(guests))
	start := time.Now()
	if _, err := in.Write([]byte(strings.Repeat("g", len(guests)-errs))); err != nil {
		return 0, 0, 0, fmt.Errorf("release crawlers: %w", err)
	}
	for answered := errs; answered < len(guests); answered++ {
		if !out.Scan() {
			return time.Since(start), errs + len(guests) - answered, 0, fmt.Errorf("crawlers ended after %d of %d answers: %v %s",
				answered, len(guests), out.Err(), truncateText(stderr.String()))
		}
		line := []byte(out.Text())
		var r struct {
			NS string `json:"ns"`
		}
		_ = json.Unmarshal(line, &r)
		g, ok := byNS[r.NS]
		if !ok {
			fail(fmt.Errorf("crawler output %q names no guest", line))
			continue
		}
		if err := checkCrawl(g, line, nil); err != nil {
			fail(err)
		}
	}
	took := time.Since(start)
	if firstErr != nil {
		env.Log.Warn("storm: crawls failed", "errors", errs, "first", firstErr)
	}
	in.Close()
	waited = true
	var cpu time.Duration
	if err := cmd.Wait(); err == nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return took, errs, cpu, nil
}

func truncateText(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
