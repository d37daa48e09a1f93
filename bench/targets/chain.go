package targets

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mdctl/mdctl/bench/rig"
	"github.com/mdctl/mdctl/server"
	"github.com/mdctl/mdctl/server/admin"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// Names of the chain target, its child and its peer, and of the chain on
// PostgreSQL (judged against the chain on SQLite).
const (
	Chain       = "chain"
	ChainPG     = "chain-pg"
	MdctlServe  = "mdctl-serve"
	NovaHAProxy = "nova-haproxy"
)

// Lab sizing: neutron-like /24 networks of at most LabPerNetwork
// instances each, all behind one router.
const (
	LabPerNetwork = 250
	// labSetupTimeout bounds building the lab and the data plane
	// converging (namespaces, veths, iptables for 40 networks).
	labSetupTimeout = 3 * time.Minute
	// labCleanupTimeout bounds tearing it down again.
	labCleanupTimeout = 2 * time.Minute
)

// metadataURL is what a guest asks, through its route to the router.
const metadataURL = "http://" + dataplane.MetadataIPv4

// labWorld is a running `serve` (server.Run linked into mdbench, in a child
// pinned to the server core) over a store of SeedInstances instances, with
// lab guests for some of them. Its namespaces carry a per-run suffix, so it
// never touches a real lab or another run's.
type labWorld struct {
	pid         int
	adminSocket string // serve's admin endpoint: events, /status
	dp          dataplane.Options
	guests      []labGuest
}

// labGuest is one lab guest: its namespace and the instance it is.
type labGuest struct {
	NS         string
	InstanceID string
}

// Prefix is the command that runs something inside the guest.
func (g labGuest) Prefix() []string { return []string{"ip", "netns", "exec", g.NS} }

// labNeeds are the tools a lab world needs.
func labNeeds() []rig.Requirement {
	return []rig.Requirement{
		rig.NeedBinary("ip", "apt-get install -y iproute2"),
		rig.NeedBinary("iptables", "apt-get install -y iptables"),
		rig.NeedBinary("curl", "apt-get install -y curl"),
	}
}

// startLab seeds a store with n instances on /24 networks behind one
// router, starts serve on it, and builds lab guests for the instances pick
// chooses (by seed index). The store is SQLite in serve's data dir, or
// the database at dbURL (postgres://) when that is set. Everything it
// makes is removed by env.Stop.
func startLab(ctx context.Context, env *rig.Env, dbURL string, n int, pick func(i int) bool) (*labWorld, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab targets need root (namespaces, veths, iptables)")
	}
	ctx, cancel := context.WithTimeout(ctx, labSetupTimeout)
	defer cancel()
	sfx := randHex(3)
	w := &labWorld{dp: dataplane.Options{
		SegmentNamespace: "mdbseg-" + sfx,
		GuestPrefix:      "mdb" + sfx + "-",
		StateDir:         filepath.Join(env.Dir, "dataplane"),
		GuestRoutes:      dataplane.GuestRoutesStatic,
	}}
	// Registered first: a start that fails half-way still cleans up. It
	// runs after serve is stopped, so nothing re-creates what it removes.
	env.Defer(func() { w.teardown(env.Log) })

	dataDir := filepath.Join(env.Dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("lab data dir: %w", err)
	}
	db := dbURL
	if db == "" {
		db = filepath.Join(dataDir, "mdctl.db")
	}
	st, err := store.Open(dataDir, db)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	seeded, err := SeedLab(ctx, st, n, "0e1d"+sfx+"-0000-4000-8000-000000000001")
	if err != nil {
		return nil, err
	}
	port, err := rig.FreePort()
	if err != nil {
		return nil, err
	}
	w.pid, err = env.SpawnSelf(MdctlServe, nil, MdctlServe, "-db", db, "-data-dir", dataDir,
		"-api-listen", "127.0.0.1:"+strconv.Itoa(port),
		"-segment-ns", w.dp.SegmentNamespace, "-guest-prefix", w.dp.GuestPrefix, "-state-dir", w.dp.StateDir)
	if err != nil {
		return nil, err
	}
	w.adminSocket = filepath.Join(dataDir, admin.SocketName)
	want := map[string]bool{}
	for i, id := range seeded {
		if pick(i) {
			want[id] = true
		}
	}
	snap, err := store.NewLive(st, nil).Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	guests, err := server.LabGuests(ctx, onlyInstances{st, want}, snap.Config)
	if err != nil {
		return nil, fmt.Errorf("lab guests: %w", err)
	}
	start := time.Now()
	if err := dataplane.LabUp(ctx, w.dp, guests); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	for _, g := range guests {
		w.guests = append(w.guests, labGuest{NS: dataplane.GuestNamespace(w.dp.GuestPrefix, g), InstanceID: g.InstanceID})
	}
	env.Log.Info("lab up", "guests", len(w.guests), "took", time.Since(start).Round(time.Millisecond))
	if len(w.guests) == 0 {
		return nil, errors.New("lab: no guests picked")
	}
	return w, nil
}

// waitServing waits until every guest gets 200 for its meta_data.json
// through the whole chain: serve has reconciled the router's namespace,
// rules and proxy.
func (w *labWorld) waitServing(ctx context.Context, env *rig.Env, guests []labGuest) error {
	for _, g := range guests {
		if err := env.WaitReadyIn(ctx, g.Prefix(), metadataURL+PathMetaData, nil, labSetupTimeout); err != nil {
			return fmt.Errorf("guest %s: %w", g.NS, err)
		}
	}
	return nil
}

// teardown removes the guests and the data plane, bounded in time.
func (w *labWorld) teardown(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), labCleanupTimeout)
	defer cancel()
	if err := dataplane.LabDown(ctx, w.dp); err != nil {
		log.Error("lab down", "err", err)
	}
	if err := dataplane.NewReconciler(w.dp).Teardown(ctx); err != nil {
		log.Error("data plane teardown", "err", err)
	}
}

// onlyInstances is a store whose instance list is cut to a few, so
// LabGuests builds guests for those alone out of a store of thousands.
type onlyInstances struct {
	store.Reader
	ids map[string]bool
}

func (o onlyInstances) ListInstances(ctx context.Context) ([]store.Instance, error) {
	all, err := o.Reader.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	var out []store.Instance
	for _, in := range all {
		if o.ids[in.ID] {
			out = append(out, in)
		}
	}
	return out, nil
}

// ChainTarget is the whole mdctl chain as a guest meets it: wrk inside a
// lab guest's namespace asks 169.254.169.254, its route leads into the
// router's namespace, iptables REDIRECTs to the proxy, which forwards to
// the agent's socket, which signs and asks the API. serve runs as one
// process pinned to the server core over SeedInstances instances; its CPU
// and RSS are measured. Judged against nova behind haproxy (best case).
func ChainTarget() rig.Target {
	return rig.Target{
		Name:  Chain,
		Peer:  NovaHAProxy,
		Paths: []string{PathMetaData, PathInstanceID},
		Needs: labNeeds(),
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			return startChain(ctx, env, "")
		},
	}
}

// ChainPGTarget is ChainTarget with serve's store on PostgreSQL (a
// throwaway cluster on the server core, its backends measured with
// serve) instead of SQLite in process: judged against the chain on
// SQLite in the same run, the price of the store several hosts share.
func ChainPGTarget() rig.Target {
	return rig.Target{
		Name:  ChainPG,
		Peer:  Chain,
		Paths: []string{PathMetaData, PathInstanceID},
		Needs: append(labNeeds(), needPostgres()),
		Start: func(ctx context.Context, env *rig.Env) (*rig.Running, error) {
			pg, err := startPostgres(env, "mdbench")
			if err != nil {
				return nil, err
			}
			r, err := startChain(ctx, env, pg.URL)
			if err != nil {
				return nil, err
			}
			r.PIDs = append(r.PIDs, pg.PID)
			return r, nil
		},
	}
}

// startChain starts the chain's lab over SeedInstances instances on the
// store dbURL names ("" SQLite) and waits until its guest is served.
func startChain(ctx context.Context, env *rig.Env, dbURL string) (*rig.Running, error) {
	mid := SeedInstances / 2
	w, err := startLab(ctx, env, dbURL, SeedInstances, func(i int) bool { return i == mid })
	if err != nil {
		return nil, err
	}
	if err := w.waitServing(ctx, env, w.guests); err != nil {
		return nil, err
	}
	g := w.guests[0]
	hwm, err := rig.Proc{Root: "/proc"}.PeakRSS([]int{w.pid})
	if err != nil {
		return nil, err
	}
	stream, err := adminStream(w.adminSocket)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("serve RSS, %d instances, start-up peak", SeedInstances)
	if dbURL != "" {
		name += " (store on PostgreSQL)"
	}
	return &rig.Running{
		PIDs: []int{w.pid}, URL: metadataURL, LoadPrefix: g.Prefix(), Events: stream,
		Findings: []rig.Finding{{
			Name:  name,
			Value: fmt.Sprintf("%.1f MiB", float64(hwm)/(1<<20)), Goal: "≤ 60 MiB", Met: rig.Judge(hwm <= 60<<20),
			Detail: "VmHWM of serve (API, agent, proxy, data plane) after reconciling and the first answers, before load",
		}},
	}, nil
}

// SeedLab writes n instances in one transaction: LabPerNetwork per /24
// network (10.90.k.0/24, gateway .1 on routerID's interface, instances
// from .2), one port each, and the shared secret. It returns the instance
// ids in seed order. Port ids differ in their first 11 characters, which
// name interfaces.
func SeedLab(ctx context.Context, s store.Store, n int, routerID string) ([]string, error) {
	nets := (n + LabPerNetwork - 1) / LabPerNetwork
	if n < 1 || nets > 250 {
		return nil, fmt.Errorf("seed lab of %d instances: want 1..%d", n, 250*LabPerNetwork)
	}
	const project = "7c2e9a1b4d6f4a8e9b0c1d2e3f4a5b6c"
	ids := make([]string, 0, n)
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.SetSetting(ctx, "metadata_proxy_shared_secret", SharedSecret); err != nil {
			return err
		}
		// Rate limiting stays on (its cost is measured) with limits above
		// what one wrk source sends: a guest never asks 10^5 a second.
		for k, v := range labRateLimits {
			if err := tx.SetSetting(ctx, k, v); err != nil {
				return err
			}
		}
		if err := tx.PutProject(ctx, store.Project{ID: project, Name: "bench-lab"}); err != nil {
			return err
		}
		if err := tx.PutRouter(ctx, store.Router{ID: routerID, Name: "bench-router", ProjectID: project}); err != nil {
			return err
		}
		for k := range nets {
			netID, subID := labUUID(0xa0, k), labUUID(0xa1, k)
			if err := tx.PutNetwork(ctx, store.Network{ID: netID, Name: fmt.Sprintf("bench-net-%d", k), ProjectID: project, MTU: 1450}); err != nil {
				return err
			}
			if err := tx.PutSubnet(ctx, store.Subnet{ID: subID, NetworkID: netID, Name: fmt.Sprintf("bench-subnet-%d", k),
				IPVersion: 4, CIDR: fmt.Sprintf("10.90.%d.0/24", k), GatewayIP: fmt.Sprintf("10.90.%d.1", k)}); err != nil {
				return err
			}
			if err := tx.PutPort(ctx, store.Port{ID: labUUID(0xa2, k), NetworkID: netID, ProjectID: project,
				MACAddress: fmt.Sprintf("fa:16:3e:ff:00:%02x", k),
				FixedIPs:   []store.FixedIP{{SubnetID: subID, IPAddress: fmt.Sprintf("10.90.%d.1", k)}},
				DeviceID:   routerID, DeviceOwner: store.OwnerRouterInterface}); err != nil {
				return fmt.Errorf("router interface %d: %w", k, err)
			}
		}
		for i := range n {
			k, host := i/LabPerNetwork, i%LabPerNetwork+2
			id := labUUID(0xb0, i)
			name := fmt.Sprintf("vm-%05d", i)
			if err := tx.PutInstance(ctx, store.Instance{
				ID: id, Name: name, Hostname: name, ProjectID: project, AvailabilityZone: "nova", Flavor: "m1.small",
				Meta:     store.Meta{{Key: "role", Value: "bench"}, {Key: "owner", Value: "perf"}},
				Keys:     []store.Key{{Name: "bench-key", Type: "ssh", Data: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBench bench@example"}},
				UserData: []byte("#cloud-config\nhostname: " + name + "\n"),
				EC2ID:    int64(i + 1),
			}); err != nil {
				return fmt.Errorf("instance %d: %w", i, err)
			}
			if err := tx.PutPort(ctx, store.Port{ID: labUUID(0xc0, i), NetworkID: labUUID(0xa0, k), ProjectID: project,
				MACAddress: fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff),
				FixedIPs:   []store.FixedIP{{SubnetID: labUUID(0xa1, k), IPAddress: fmt.Sprintf("10.90.%d.%d", k, host)}},
				DeviceID:   id, DeviceOwner: store.OwnerCompute}); err != nil {
				return fmt.Errorf("port of instance %d: %w", i, err)
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seed lab of %d instances: %w", n, err)
	}
	return ids, nil
}

// labRateLimits keep neutron's limiter running in the lab but above a
// load generator's rate from one source, and lift the per-source
// connection cap above its connections (wrk -c64 is one guest).
var labRateLimits = map[string]string{
	"metadata_rate_limiting.rate_limit_enabled":     "true",
	"metadata_rate_limiting.base_query_rate_limit":  "100000000",
	"metadata_rate_limiting.burst_query_rate_limit": "100000000",
	"metadata_proxy_conns_per_source":               "0",
}

// labUUID is a UUID-shaped id whose first 11 characters differ per index
// (interface names keep 11), kind telling record kinds apart.
func labUUID(kind byte, i int) string {
	return fmt.Sprintf("%02x%06x-%04x-4000-8000-%012x", kind, i, i&0xffff, i)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveChild is the mdctl-serve child: server.Run, as `mdctl serve` runs
// it (all components, info logs), on the given store and data plane names.
func serveChild(ctx context.Context, args []string, _ *slog.Logger) error {
	fs := flag.NewFlagSet(MdctlServe, flag.ContinueOnError)
	db := fs.String("db", "", "store: a SQLite file or a postgres:// URL")
	node := fs.String("node", "", "node name (serve --node; default the host name)")
	dataDir := fs.String("data-dir", "", "data dir (agent socket, admin socket)")
	apiListen := fs.String("api-listen", "127.0.0.1:8775", "API address")
	components := fs.String("components", strings.Join(server.AllComponents, ","), "components to run, as serve --components")
	seg := fs.String("segment-ns", "", "segment namespace (owner mark)")
	prefix := fs.String("guest-prefix", "", "lab guest namespace prefix")
	stateDir := fs.String("state-dir", "", "data plane state dir")
	prof := fs.String("cpuprofile", "", "write a CPU profile here while serving")
	if err := fs.Parse(args); err != nil {
		return err
	}
	comps, err := server.ParseComponents(*components)
	if err != nil {
		return fmt.Errorf("%s: %w", MdctlServe, err)
	}
	if *db == "" || *dataDir == "" {
		return fmt.Errorf("%s: -db and -data-dir are required", MdctlServe)
	}
	// The proxies' data plane must be named per run: never a real lab's.
	if slices.Contains(comps, server.ComponentProxy) && (*seg == "" || *prefix == "") {
		return fmt.Errorf("%s: with the proxy component, -segment-ns and -guest-prefix are required", MdctlServe)
	}
	stop, err := startProfile(*prof)
	if err != nil {
		return err
	}
	defer stop()
	st, err := store.Open(*dataDir, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	return server.Run(ctx, server.Options{
		Store: st, DataDir: *dataDir, Components: comps, APIListen: *apiListen, Logger: childLogger(), Node: *node,
		Dataplane: dataplane.Options{SegmentNamespace: *seg, GuestPrefix: *prefix, StateDir: *stateDir,
			GuestRoutes: dataplane.GuestRoutesStatic},
	})
}
