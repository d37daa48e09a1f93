// Package targets holds the servers mdbench measures: the reference servers
// (bench/reference's bare constsrv, haproxy configured as neutron configures
// it, nova's own metadata handler under bench/reference/nova's runner) and
// mdctl's own. Each is a rig.Target whose Start spawns
// processes through rig.Env.
//
// It owns how each server is started and addressed. It must never measure
// (that is package rig's job) nor start a server in mdbench's own process.
package targets

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
)

// Paths requested from every metadata server. constsrv answers any path
// with the same body, so the bare and hop targets load the EC2 one.
const (
	PathInstanceID = "/latest/meta-data/instance-id"
	PathMetaData   = "/openstack/latest/meta_data.json"
)

// Names of the targets; the peers of mdctl's targets.
const (
	Bare    = rig.BareTarget
	HAProxy = "haproxy"
	Nova    = "nova"
)

// startTimeout bounds a server's start-up: nova imports for several seconds
// on a loaded machine.
const startTimeout = 60 * time.Second

// BareTarget is constsrv on TCP: the limit of a Go net/http server here.
func BareTarget() rig.Target {
	return rig.Target{
		Name:  Bare,
		Paths: []string{PathInstanceID},
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			port, err := rig.FreePort()
			if err != nil {
				return nil, err
			}
			addr := "127.0.0.1:" + strconv.Itoa(port)
			pid, err := env.Spawn("constsrv", nil, env.Tools.Constsrv, "-listen", addr)
			if err != nil {
				return nil, err
			}
			url := "http://" + addr
			if err := env.WaitReady(ctx, url+"/", nil, startTimeout); err != nil {
				return nil, err
			}
			return &rig.Running{PIDs: []int{pid}, URL: url}, nil
		},
	}
}

// ConstBackend starts constsrv on a unix socket in env.Dir, the backend a
// proxy hop forwards to, and returns the socket path. Its PID is not
// measured: only the hop is.
func ConstBackend(env *rig.Env) (string, error) {
	sock := filepath.Join(env.Dir, "md.sock")
	if _, err := env.Spawn("constsrv-backend", nil, env.Tools.Constsrv, "-listen", "unix:"+sock); err != nil {
		return "", err
	}
	return sock, nil
}

// haproxyListen is where the haproxy targets bind: neutron's router port.
const haproxyListen = "127.0.0.1:9697"

// HAProxyTarget is haproxy configured as neutron configures the namespace
// metadata proxy, forwarding to constsrv on a unix socket: the proxy hop
// alone, the one mdctl's proxy is judged against.
func HAProxyTarget() rig.Target {
	return rig.Target{
		Name:  HAProxy,
		Paths: []string{PathInstanceID},
		Needs: []rig.Requirement{rig.NeedBinary("haproxy", rig.InstallWrkHAProxy)},
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			if err := rig.PortFree(haproxyListen); err != nil {
				return nil, err
			}
			sock, err := ConstBackend(env)
			if err != nil {
				return nil, err
			}
			cfg, err := NeutronHAProxy{Bind: haproxyListen, Server: sock, Resource: "Router", ResourceID: routerID}.Write(env.Dir, "haproxy.cfg")
			if err != nil {
				return nil, err
			}
			pid, err := env.Spawn("haproxy", nil, env.Tools.HAProxy, "-db", "-f", cfg)
			if err != nil {
				return nil, err
			}
			url := "http://" + haproxyListen
			if err := env.WaitReady(ctx, url+PathInstanceID, nil, startTimeout); err != nil {
				return nil, err
			}
			return &rig.Running{PIDs: []int{pid}, URL: url}, nil
		},
	}
}

// NovaTarget is nova's own metadata handler (Debian python3-nova) in nova's
// eventlet server with a cache-hit instance lookup (bench/reference/nova):
// nova's best case, the one mdctl's API is judged against. Requests carry
// the signed headers the runner prints.
func NovaTarget() rig.Target {
	return rig.Target{
		Name:  Nova,
		Paths: []string{PathMetaData, PathInstanceID},
		Needs: []rig.Requirement{rig.NeedNova()},
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			script := novaRunner(env)
			headers, err := novaHeaders(ctx, env.Tools.Python, script)
			if err != nil {
				return nil, err
			}
			port, err := rig.FreePort()
			if err != nil {
				return nil, err
			}
			pid, err := env.Spawn("nova", nil, env.Tools.Python, script, "--port", strconv.Itoa(port))
			if err != nil {
				return nil, err
			}
			url := "http://127.0.0.1:" + strconv.Itoa(port)
			if err := env.WaitReady(ctx, url+PathMetaData, headers, startTimeout); err != nil {
				return nil, err
			}
			return &rig.Running{PIDs: []int{pid}, URL: url, Headers: headers}, nil
		},
	}
}

// novaHeaders runs the script's --print-headers and returns its lines.
func novaHeaders(ctx context.Context, python, script string) ([]string, error) {
	// stdout only: nova's imports warn on stderr.
	cmd := exec.CommandContext(ctx, python, script, "--print-headers")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nova --print-headers: %w: %s", err, stderr.String())
	}
	return ParseHeaderLines(string(out))
}

// ParseHeaderLines reads "Name: value" lines, skipping blank ones.
func ParseHeaderLines(s string) ([]string, error) {
	var hs []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("header line %q is not Name: value", l)
		}
		hs = append(hs, strings.TrimSpace(k)+": "+strings.TrimSpace(v))
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no header lines in %q", s)
	}
	return hs, nil
}

// NovaHAProxyTarget is the chain's peer, OpenStack's best case for a
// guest's request: haproxy as neutron configures it, forwarding straight
// to nova's handler (cache hit) on TCP instead of the agent's unix socket,
// without neutron's metadata agent between them (which would only add a
// Python hop). Requests carry nova's signed headers, as the agent would
// have added them; haproxy appends X-Forwarded-For (option forwardfor).
// Both processes are measured.
func NovaHAProxyTarget() rig.Target {
	return rig.Target{
		Name:  NovaHAProxy,
		Paths: []string{PathMetaData, PathInstanceID},
		Needs: []rig.Requirement{rig.NeedNova(), rig.NeedBinary("haproxy", rig.InstallWrkHAProxy)},
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			if err := rig.PortFree(haproxyListen); err != nil {
				return nil, err
			}
			script := novaRunner(env)
			headers, err := novaHeaders(ctx, env.Tools.Python, script)
			if err != nil {
				return nil, err
			}
			port, err := rig.FreePort()
			if err != nil {
				return nil, err
			}
			novaAddr := "127.0.0.1:" + strconv.Itoa(port)
			cfg, err := NeutronHAProxy{Bind: haproxyListen, Server: novaAddr, Resource: "Router", ResourceID: routerID}.Write(env.Dir, "haproxy-nova.cfg")
			if err != nil {
				return nil, err
			}
			novaPID, err := env.Spawn("nova", nil, env.Tools.Python, script, "--port", strconv.Itoa(port))
			if err != nil {
				return nil, err
			}
			if err := env.WaitReady(ctx, "http://"+novaAddr+PathMetaData, headers, startTimeout); err != nil {
				return nil, err
			}
			hapPID, err := env.Spawn("haproxy", nil, env.Tools.HAProxy, "-db", "-f", cfg)
			if err != nil {
				return nil, err
			}
			url := "http://" + haproxyListen
			if err := env.WaitReady(ctx, url+PathMetaData, headers, startTimeout); err != nil {
				return nil, err
			}
			return &rig.Running{PIDs: []int{hapPID, novaPID}, URL: url, Headers: headers}, nil
		},
	}
}

// novaRunner is bench/reference/nova's runner of nova's handler.
func novaRunner(env *rig.Env) string {
	return filepath.Join(env.Tools.ReferenceDir, "nova", "serve.py")
}
