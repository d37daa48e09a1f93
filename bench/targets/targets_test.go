package targets

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/api"
	"github.com/mdctl/mdctl/store"
)

// TestMain lets this test binary stand in for mdbench as a child server
// (`-child NAME -- args`), so the SpawnSelf hook is tested for real.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "-child" {
		args := os.Args[3:]
		if len(args) > 0 && args[0] == "--" {
			args = args[1:]
		}
		fn, ok := Children()[os.Args[2]]
		if !ok {
			os.Exit(2)
		}
		ctx, stop := signalContext()
		defer stop()
		if err := fn(ctx, args, slog.Default()); err != nil {
			slog.Error("child", "err", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseHeaderLines(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "X-Instance-ID: abc\nX-Tenant-ID:  t1 \n\nX-Forwarded-For: 10.0.0.5\n",
			want: []string{"X-Instance-ID: abc", "X-Tenant-ID: t1", "X-Forwarded-For: 10.0.0.5"}},
		{in: "Modules with known eventlet monkey patching issues: urllib3.\n", bad: true},
		{in: "no colon here\n", bad: true},
		{in: "\n\n", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseHeaderLines(tt.in)
		if (err != nil) != tt.bad || !slices.Equal(got, tt.want) {
			t.Errorf("ParseHeaderLines(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

// TestSeedServesSignedRequests seeds a real SQLite store and asks mdctl's
// API for the chosen instance with the headers the rig will send: the
// signature, tenant and seed must all line up for a 200, and a wrong secret
// must not.
func TestSeedServesSignedRequests(t *testing.T) {
	ctx := context.Background()
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "md.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	inst, err := Seed(ctx, s, 40)
	if err != nil {
		t.Fatalf("Seed: %v", err)
	}
	all, err := s.ListInstances(ctx)
	if err != nil || len(all) != 40 {
		t.Fatalf("ListInstances = %d, %v; want 40", len(all), err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- api.New(api.Options{Store: s, Logger: slog.New(slog.DiscardHandler)}).Run(sctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 5 * time.Second}

	for _, path := range []string{PathMetaData, PathInstanceID} {
		if err := rig.Probe(ctx, client, base+path, inst.Headers(SharedSecret)); err != nil {
			t.Errorf("signed GET %s: %v", path, err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, base+PathInstanceID, nil)
	for _, h := range inst.Headers(SharedSecret) {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stored, err := s.GetInstance(ctx, inst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("i-%08x", stored.EC2ID); string(body) != want {
		t.Errorf("instance-id = %q, want %q (EC2 id of %s)", body, want, inst.ID)
	}
	if err := rig.Probe(ctx, client, base+PathMetaData, inst.Headers("wrong-secret")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("GET with a wrong secret: %v, want 403", err)
	}
}

// TestRunBareAndMdctlProxy runs the rig for real on two targets (1 s each,
// keep-alive only): constsrv, and mdctl's proxy hop started as a child of
// this test binary. It checks that figures come back and that the servers
// are gone afterwards, never what the figures are.
func TestRunBareAndMdctlProxy(t *testing.T) {
	for _, tool := range []string{"wrk", "taskset", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (%s)", tool, rig.InstallWrkHAProxy)
		}
	}
	ctx := context.Background()
	scratch := t.TempDir()
	constsrv, err := rig.BuildConstsrv(ctx, referenceDir(t, "constsrv"), scratch)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrk, _ := exec.LookPath("wrk")
	taskset, _ := exec.LookPath("taskset")
	cfg := rig.Config{
		Duration: time.Second, Threads: 1, Connections: 8, Modes: []rig.Mode{rig.KeepAlive},
		Scratch: scratch, Proc: rig.Proc{Root: "/proc"}, ClockTicks: rig.ClockTicks(),
		Log: slog.New(slog.DiscardHandler),
		Tools: rig.Tools{Wrk: wrk, Taskset: taskset, Constsrv: constsrv, Self: self,
			ReferenceDir: referenceDir(t), ServerCPU: "0", LoadCPU: "0-1"},
	}
	rows, _, fails := rig.Run(ctx, cfg, []rig.Target{BareTarget(), MdctlProxyTarget()})
	if len(fails) > 0 {
		for _, name := range []string{"constsrv", "constsrv-backend", "mdctl-proxy"} {
			for _, dir := range []string{Bare, MdctlProxy} {
				if b, err := os.ReadFile(filepath.Join(scratch, dir, name+".log")); err == nil {
					t.Logf("%s/%s.log:\n%s", dir, name, b)
				}
			}
		}
		t.Fatalf("failures: %+v", fails)
	}
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.Wrk.Requests == 0 || r.Wrk.Errors() != 0 || r.CPUPerReq <= 0 || r.PeakRSS == 0 {
			t.Errorf("%s: implausible row %+v", r.Target, r)
		}
	}
	lines := rig.Lines(rows)
	if lines[1].PeerLabel != "" || lines[1].VsBare <= 0 {
		// haproxy did not run, so there is no peer figure; bare did.
		t.Errorf("mdctl-proxy line: %+v", lines[1])
	}
	// Everything the rig started is stopped: nothing listens on the hop's
	// backend socket any more.
	if c, err := net.Dial("unix", filepath.Join(scratch, MdctlProxy, "md.sock")); err == nil {
		c.Close()
		t.Errorf("constsrv backend still listening after the run")
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
}

// referenceDir is bench/reference in the repository, or a folder in it.
func referenceDir(t *testing.T, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{testworld.ModuleRoot(t), "bench", "reference"}, elem...)...)
}
