package rig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Requirement is one tool the rig or a target needs. The rig installs
// nothing; it says what to run.
type Requirement struct {
	What    string       // "wrk"
	Check   func() error // nil error: present
	Install string       // the command that installs it
}

// Install commands; the Makefile's bench target runs them.
const (
	InstallWrkHAProxy = "apt-get install -y wrk haproxy"
	InstallNova       = "apt-get install -y --no-install-recommends python3-nova"
)

// Python is the interpreter nova's Debian package installs into; a python3
// earlier on PATH (pyenv) does not see it.
const Python = "/usr/bin/python3"

// NeedBinary is a requirement satisfied when name is on PATH.
func NeedBinary(name, install string) Requirement {
	return Requirement{What: name, Install: install, Check: func() error {
		_, err := exec.LookPath(name)
		return err
	}}
}

// NeedNova is satisfied when Debian's python3-nova imports.
func NeedNova() Requirement {
	return Requirement{What: "python3-nova", Install: InstallNova, Check: func() error {
		out, err := exec.Command(Python, "-c", "import nova.api.metadata.handler").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s cannot import nova: %s", Python, lastLine(out))
		}
		return nil
	}}
}

// CheckRequirements checks every requirement (each once by name) and, if any
// is missing, returns one error listing them with the commands to run.
func CheckRequirements(reqs []Requirement) error {
	seen := map[string]bool{}
	var missing, installs []string
	for _, r := range reqs {
		if seen[r.What] {
			continue
		}
		seen[r.What] = true
		if err := r.Check(); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", r.What, err))
			if !slices.Contains(installs, r.Install) {
				installs = append(installs, r.Install)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("missing %s; install with:\n  %s", strings.Join(missing, ", "), strings.Join(installs, "\n  "))
}

// BuildConstsrv builds the reference constant server, the package in
// src (bench/reference/constsrv, standard library only), into dir and
// returns the binary.
func BuildConstsrv(ctx context.Context, src, dir string) (string, error) {
	bin := filepath.Join(dir, "constsrv")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	// GOWORK=off: a workspace of whoever runs the rig must not change it.
	cmd.Dir, cmd.Env = src, append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build constsrv in %s: %w: %s", src, err, out)
	}
	return bin, nil
}

// ToolVersion runs argv and returns the first non-empty line of its output
// ("?" when it fails): for the machine section of the report.
func ToolVersion(argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return "?"
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
