// Package judge runs cloud-init's own readers, the judges of mdctl's
// metadata: tools/cloudinit/crawl, over Debian's cloud-init packages that
// tools/cloudinit/setup unpacks (never installs), one root per version
// listed in tools/cloudinit/judges. It is for tests and benchmarks only; it
// knows where the tool is and what it prints, and asserts nothing.
package judge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Paths of the harness inside the repository.
const (
	ToolPath   = "tools/cloudinit/crawl"
	SetupPath  = "tools/cloudinit/setup"
	JudgesPath = "tools/cloudinit/judges"
)

// Crawl is a judge's verdict: the tool's one JSON object.
type Crawl struct {
	Reader          string         `json:"reader"`
	Judge           string         `json:"judge"` // cloud-init's full version, e.g. 25.1.4
	InstanceID      string         `json:"instance_id"`
	Name            string         `json:"name"`
	Hostname        string         `json:"hostname"`
	PublicKeys      map[string]any `json:"public_keys"`
	UserdataLen     int            `json:"userdata_len"`
	UserdataSHA256  string         `json:"userdata_sha256"`
	NetworkConfig   bool           `json:"network_config"` // the metadata had network_data.json
	Network         *Network       `json:"network"`        // what cloud-init made of it
	MetadataAddress string         `json:"metadata_address"`
	Version         any            `json:"version"`
	Keys            []string       `json:"keys"`
	Label           string         `json:"label"`
	FSType          string         `json:"fstype"`
	Error           string         `json:"error"`
}

// Network is network_data.json as cloud-init applies it: converted by
// convert_net_json, validated ("strict" against cloud-init's schema, or
// "none" for versions without one) and rendered.
type Network struct {
	Schema  string `json:"schema"`
	Netplan string `json:"netplan"`
	ENI     string `json:"eni"`
}

// ModuleRoot is the folder holding go.mod, found upwards from the working
// directory (a test's package folder).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Versions lists the judges' versions in tools/cloudinit/judges, the
// default first.
func Versions(moduleRoot string) ([]string, error) {
	f, err := os.Open(filepath.Join(moduleRoot, JudgesPath))
	if err != nil {
		return nil, fmt.Errorf("judges: %w", err)
	}
	defer f.Close()
	var vs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && !strings.HasPrefix(fields[0], "#") {
			vs = append(vs, fields[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("judges: %w", err)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("judges: %s lists none", f.Name())
	}
	return vs, nil
}

// Command is the crawl tool run by judge version ("" for the default) in
// mode with args, after prefix (e.g. ip netns exec NS); stdout and stderr
// are left to the caller.
func Command(ctx context.Context, moduleRoot string, prefix []string, version, mode string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, prefix...), filepath.Join(moduleRoot, ToolPath))
	if version != "" {
		argv = append(argv, "--judge", version)
	}
	argv = append(append(argv, mode), args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// ErrNotSetUp is returned by Run when the judge's cloud-init is not
// unpacked (the tool exits 2 and says to run setup).
var ErrNotSetUp = errors.New("cloud-init's reader is not set up (make test-deps runs " + SetupPath + ")")

// Run runs cmd (from Command) and decodes its verdict. The error is nil
// only when cloud-init accepted the data; a rejection still returns the
// Crawl with its Error. stderr is the tool's, for failure messages.
func Run(cmd *exec.Cmd) (c Crawl, stderr string, err error) {
	var out, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &e
	runErr := cmd.Run()
	stderr = e.String()
	var exit *exec.ExitError
	if errors.As(runErr, &exit) && exit.ExitCode() == 2 && strings.Contains(stderr, "not set up") {
		return c, stderr, fmt.Errorf("%w: %s", ErrNotSetUp, strings.TrimSpace(stderr))
	}
	if jerr := json.Unmarshal(out.Bytes(), &c); jerr != nil {
		return c, stderr, fmt.Errorf("crawl printed %q: %w", out.String(), errors.Join(runErr, jerr))
	}
	switch {
	case c.Error != "":
		return c, stderr, fmt.Errorf("cloud-init %s rejected the %s metadata: %s", c.Judge, c.Reader, c.Error)
	case runErr != nil:
		return c, stderr, fmt.Errorf("crawl: %w", runErr)
	}
	return c, stderr, nil
}

// Root is where judge version ("" for the default) has cloud-init's
// package unpacked, as the crawl tool resolves it (tools/cloudinit/judges,
// or its CLOUDINIT_ROOT_<version> override); Packages below it is what
// goes on PYTHONPATH.
func Root(ctx context.Context, moduleRoot, version string) (string, error) {
	cmd := Command(ctx, moduleRoot, nil, version, "")
	cmd.Args = append(cmd.Args[:len(cmd.Args)-1], "--root")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --root: %w", ToolPath, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Packages is the python3 package folder inside a judge's root.
const Packages = "usr/lib/python3/dist-packages"

// RootEnv names the environment variable that moves judge version's root
// (CLOUDINIT_ROOT_25_1 for 25.1).
func RootEnv(version string) string {
	return "CLOUDINIT_ROOT_" + strings.ReplaceAll(version, ".", "_")
}
