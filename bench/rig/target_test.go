package rig

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStopPID: a process stopped on its own before the target ends is
// gone, forgotten (Exited does not take its end for a crash), and its
// peers keep running; an unknown pid is an error; a process that failed
// is reported with its log.
func TestStopPID(t *testing.T) {
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Skip("taskset not installed (apt-get install -y util-linux)")
	}
	env, err := NewEnv(t.TempDir(), "stop", Tools{Taskset: taskset, ServerCPU: "0", LoadCPU: "0"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Stop)
	server, err := env.Spawn("server", nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := env.SpawnLoad("consumer", nil, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.StopPID(consumer); err != nil {
		// Killed by SIGTERM: sleep does not exit 0.
		if !strings.Contains(err.Error(), "consumer exited") || !strings.Contains(err.Error(), "consumer.log") {
			t.Errorf("StopPID(consumer) = %v, want its exit named with its log", err)
		}
	} else {
		t.Error("StopPID of a sleep killed by SIGTERM: no error")
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(consumer)); err == nil {
		t.Errorf("consumer %d still exists after StopPID", consumer)
	}
	if err := env.Exited(); err != nil {
		t.Errorf("Exited after StopPID = %v, want nil (the stopped process is forgotten, the server runs)", err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(server)); err != nil {
		t.Errorf("server %d gone after stopping the consumer: %v", server, err)
	}
	if err := env.StopPID(consumer); err == nil {
		t.Error("StopPID of a pid already stopped: no error")
	}
	ready := filepath.Join(env.Dir, "ready")
	clean, err := env.SpawnLoad("clean", nil, "sh", "-c", "trap 'exit 0' TERM; touch "+ready+"; while :; do sleep 0.05; done")
	if err != nil {
		t.Fatal(err)
	}
	// Stopped only once its trap is set, or SIGTERM would kill it.
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("the trapping shell never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := env.StopPID(clean); err != nil {
		t.Errorf("StopPID of a process exiting 0 on SIGTERM = %v", err)
	}
}
