package targets

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/server/proxy"
	"github.com/mdctl/mdctl/store"
)

// Names of mdctl's targets and of the child servers they spawn.
const (
	MdctlAPI   = "mdctl-api"
	MdctlProxy = "mdctl-proxy"
)

// Seeding for mdctl-api: the same secret as nova_md_server.py's default, and
// enough instances that lookups are not a toy's.
const (
	SharedSecret  = "bench-shared-secret"
	SeedInstances = 10000
	// routerID is the one haproxy-neutron.cfg sets.
	routerID = "0d5b8f7e-3c21-4a6e-b9f4-2e7c1a0d6b39"
)

// mdctlTargets are mdctl's own servers, each judged against its peer.
func mdctlTargets() []rig.Target {
	return []rig.Target{MdctlProxyTarget(), MdctlAPITarget(), NovaHAProxyTarget(), ChainTarget(), ChainPGTarget()}
}

// mdctlChildren are the child servers mdctl's targets spawn.
func mdctlChildren() map[string]ChildFunc {
	return map[string]ChildFunc{MdctlProxy: serveProxy, MdctlServe: serveChild, EventsConsumer: consumeEvents}
}

// MdctlAPITarget is mdctl's metadata API over a SQLite store seeded with
// SeedInstances instances, loaded with agent-signed requests for one of
// them: judged against nova's handler. It runs as `serve --components api`
// does (server.Run with a data dir): the API publishes its events to
// serve's bus and the admin endpoint is up, so the event stream's cost
// can be measured against the same server (Running.Events).
func MdctlAPITarget() rig.Target {
	return rig.Target{
		Name:  MdctlAPI,
		Peer:  Nova,
		Paths: []string{PathMetaData, PathInstanceID},
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			dataDir := filepath.Join(env.Dir, "data")
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return nil, fmt.Errorf("%s data dir: %w", MdctlAPI, err)
			}
			db := filepath.Join(dataDir, "mdctl.db")
			inst, err := seedStore(ctx, db, SeedInstances)
			if err != nil {
				return nil, err
			}
			addr, err := rig.FreeAddr()
			if err != nil {
				return nil, err
			}
			pid, err := env.SpawnSelf(MdctlAPI, nil, MdctlServe, "-components", server.ComponentAPI,
				"-db", db, "-data-dir", dataDir, "-api-listen", addr)
			if err != nil {
				return nil, err
			}
			url := "http://" + addr
			headers := inst.Headers(SharedSecret)
			if err := env.WaitReady(ctx, url+PathMetaData, headers, startTimeout); err != nil {
				return nil, err
			}
			stream, err := adminStream(filepath.Join(dataDir, admin.SocketName))
			if err != nil {
				return nil, err
			}
			return &rig.Running{PIDs: []int{pid}, URL: url, Headers: headers, Events: stream}, nil
		},
	}
}

// MdctlProxyTarget is mdctl's namespace proxy (server/proxy) forwarding to
// constsrv on a unix socket in place of the agent: the proxy hop alone,
// judged against haproxy in neutron's configuration.
func MdctlProxyTarget() rig.Target {
	return rig.Target{
		Name:  MdctlProxy,
		Peer:  HAProxy,
		Paths: []string{PathInstanceID},
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			sock, err := ConstBackend(env)
			if err != nil {
				return nil, err
			}
			port, err := rig.FreePort()
			if err != nil {
				return nil, err
			}
			addr := "127.0.0.1:" + strconv.Itoa(port)
			pid, err := env.SpawnSelf("mdctl-proxy", nil, MdctlProxy, "-agent-socket", sock, "-listen", addr)
			if err != nil {
				return nil, err
			}
			url := "http://" + addr
			if err := env.WaitReady(ctx, url+PathInstanceID, nil, startTimeout); err != nil {
				return nil, err
			}
			return &rig.Running{PIDs: []int{pid}, URL: url}, nil
		},
	}
}

// BenchInstance is the seeded instance the load asks for.
type BenchInstance struct {
	ID, ProjectID, IP string
}

// Headers are what neutron's agent sends for it: the instance id signed
// with HMAC-SHA256 under secret, lowercase hex.
func (b BenchInstance) Headers(secret string) []string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(b.ID))
	return []string{
		"X-Instance-ID: " + b.ID,
		"X-Tenant-ID: " + b.ProjectID,
		"X-Instance-ID-Signature: " + hex.EncodeToString(mac.Sum(nil)),
		"X-Forwarded-For: " + b.IP,
	}
}

// seedStore creates the SQLite store at path with n instances and returns the
// one in the middle.
func seedStore(ctx context.Context, path string, n int) (BenchInstance, error) {
	s, err := store.OpenSQLite(path)
	if err != nil {
		return BenchInstance{}, err
	}
	defer s.Close()
	return Seed(ctx, s, n)
}

// Seed writes n instances, each with one port on one /16, plus the shared
// secret, in one transaction through the store API, and returns instance
// n/2. n is at most 65,000 (one address each).
func Seed(ctx context.Context, s store.Store, n int) (BenchInstance, error) {
	if n < 1 || n > 65000 {
		return BenchInstance{}, fmt.Errorf("seed %d instances: want 1..65000", n)
	}
	const (
		project = "3a9d1c7e5b2f4e8a9c0d1e2f3a4b5c6d"
		network = "5b1e0c9a-7d3f-4e2a-8c6b-1a2b3c4d5e6f"
		subnet  = "9c8b7a6d-5e4f-4a3b-9c2d-1e0f2a3b4c5d"
	)
	ip := func(i int) string { return fmt.Sprintf("10.90.%d.%d", (i+2)/256, (i+2)%256) }
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.SetSetting(ctx, "metadata_proxy_shared_secret", SharedSecret); err != nil {
			return err
		}
		if err := tx.PutProject(ctx, store.Project{ID: project, Name: "bench"}); err != nil {
			return err
		}
		if err := tx.PutNetwork(ctx, store.Network{ID: network, Name: "bench-net", ProjectID: project, MTU: 1450}); err != nil {
			return err
		}
		if err := tx.PutSubnet(ctx, store.Subnet{ID: subnet, NetworkID: network, Name: "bench-subnet", IPVersion: 4,
			CIDR: "10.90.0.0/16", GatewayIP: "10.90.0.1", EnableDHCP: true}); err != nil {
			return err
		}
		for i := range n {
			id := benchUUID("6f1c0b2e", i)
			inst := store.Instance{
				ID: id, Name: fmt.Sprintf("bench-vm-%d", i), Hostname: fmt.Sprintf("bench-vm-%d", i),
				ProjectID: project, AvailabilityZone: "nova", Flavor: "m1.small",
				Meta:     store.Meta{{Key: "role", Value: "bench"}, {Key: "owner", Value: "perf"}},
				Keys:     []store.Key{{Name: "bench-key", Type: "ssh", Data: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBench bench@example"}},
				UserData: []byte("#cloud-config\nhostname: bench-vm\n"),
				EC2ID:    int64(i + 1),
			}
			if err := tx.PutInstance(ctx, inst); err != nil {
				return fmt.Errorf("instance %d: %w", i, err)
			}
			port := store.Port{ID: benchUUID("a1b2c3d4", i), NetworkID: network, ProjectID: project,
				MACAddress: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
				FixedIPs:   []store.FixedIP{{SubnetID: subnet, IPAddress: ip(i)}},
				DeviceID:   id, DeviceOwner: store.OwnerCompute}
			if err := tx.PutPort(ctx, port); err != nil {
				return fmt.Errorf("port of instance %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return BenchInstance{}, fmt.Errorf("seed %d instances: %w", n, err)
	}
	return BenchInstance{ID: benchUUID("6f1c0b2e", n/2), ProjectID: project, IP: ip(n / 2)}, nil
}

// benchUUID is a stable UUID-shaped id, the prefix telling kinds apart.
func benchUUID(prefix string, i int) string {
	return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, i)
}

// childLogger logs at info, as `mdctl serve` does, to the child's stderr
// (its log file in the target's scratch dir).
func childLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("bench", true)
}

// serveProxy is the mdctl-proxy child: -agent-socket PATH -listen HOST:PORT.
func serveProxy(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet(MdctlProxy, flag.ContinueOnError)
	sock := fs.String("agent-socket", "", "unix socket to forward to")
	listen := fs.String("listen", "127.0.0.1:9697", "address")
	prof := fs.String("cpuprofile", "", "write a CPU profile here while serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stop, err := startProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()
	if strings.TrimSpace(*sock) == "" {
		return fmt.Errorf("%s: -agent-socket is required", MdctlProxy)
	}
	// Opened as serve opens guests' listeners.
	ln, err := dataplane.GuestListenConfig.Listen(ctx, "tcp", *listen)
	if err != nil {
		return fmt.Errorf("%s: %w", MdctlProxy, err)
	}
	// wrk is one source with 64 connections, and haproxy's reference has
	// no per-source cap: none here either, so both serve the same load.
	p := proxy.New(proxy.Options{AgentSocket: *sock, Logger: childLogger(), ConnsPerSource: -1})
	return p.Serve(ctx, ln, proxy.Identity{RouterID: routerID})
}

// startProfile writes a CPU profile to path until the returned func is
// called (when the child is stopped); "" profiles nothing. It is how the
// hot paths under wrk load are found: `mdbench -child mdctl-proxy --
// -cpuprofile /tmp/p.out ...`, then `go tool pprof`.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
