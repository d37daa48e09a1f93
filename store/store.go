// Package store owns mdctl's data model (projects, networks, subnets,
// routers, ports, instances, settings, passwords) and its persistence.
// SQLite (modernc.org/sqlite, no cgo) is the embedded default; PostgreSQL
// (pgx) serves several hosts on one database. Every caller goes through
// Store. Both backends share the rules (rules.go: validation, canonical
// forms) and the SQL record layer (records.go); they differ only in a
// dialect (sql.go), how they open, their migrations (migrations/ and
// migrations/postgres/) and their change feed: the -wal file's stat for
// SQLite (gen.go), LISTEN/NOTIFY for PostgreSQL (pgfeed.go).
// It must never know about HTTP or namespaces.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// ErrNotFound is returned (wrapped) when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when a write would break a uniqueness
// rule (a name or an IP already taken) or a password is already set.
var ErrConflict = errors.New("conflict")

// ErrUnavailable is returned (wrapped, with what is wrong) when the store
// cannot be read at all: its SQLite file removed, replaced by something
// that is not a database or unreadable, or its PostgreSQL server not
// answering. It is an outage, not a fault of the request: servers answer
// 5xx at once and serve again when the store is back.
var ErrUnavailable = errors.New("store unavailable")

// LogLevel is the level a request logs a store error at. An outage
// (ErrUnavailable) is logged once, where it is noticed (the SQLite file's
// watch, PostgreSQL's change feed), so each request that meets it logs it
// at Debug only; any other error is an Error.
func LogLevel(err error) slog.Level {
	if errors.Is(err, ErrUnavailable) {
		return slog.LevelDebug
	}
	return slog.LevelError
}

// Ping reads r with one cheap query, never from memory, so a health check
// sees what a guest's request would; a failure is ErrUnavailable.
func Ping(ctx context.Context, r Reader) error {
	if p, ok := r.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	if _, err := r.Generation(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Reader reads records. Lookups by "ref" accept an ID or a unique name.
type Reader interface {
	// Generation is a counter bumped by every committed write, so servers
	// can drop caches the moment anything changed.
	Generation(ctx context.Context) (uint64, error)

	GetProject(ctx context.Context, ref string) (Project, error)
	ListProjects(ctx context.Context) ([]Project, error)

	GetNetwork(ctx context.Context, ref string) (Network, error)
	ListNetworks(ctx context.Context) ([]Network, error)
	GetSubnet(ctx context.Context, id string) (Subnet, error)
	// ListSubnets lists a network's subnets, or every subnet for "".
	ListSubnets(ctx context.Context, networkID string) ([]Subnet, error)

	GetRouter(ctx context.Context, ref string) (Router, error)
	ListRouters(ctx context.Context) ([]Router, error)

	GetPort(ctx context.Context, id string) (Port, error)
	ListPorts(ctx context.Context, f PortFilter) ([]Port, error)

	GetInstance(ctx context.Context, ref string) (Instance, error)
	ListInstances(ctx context.Context) ([]Instance, error)
	// InstanceView reads an instance with its project, ports, networks and
	// subnets in one snapshot.
	InstanceView(ctx context.Context, ref string) (InstanceView, error)

	// Settings returns the stored settings (only those explicitly set).
	Settings(ctx context.Context) (map[string]string, error)
	// Password returns an instance's posted password, "" when none.
	Password(ctx context.Context, instanceID string) (string, error)

	// ListNodes lists the registered nodes (serves) by name; GetNode
	// reads one.
	ListNodes(ctx context.Context) ([]Node, error)
	GetNode(ctx context.Context, name string) (Node, error)
	// RouterHosts and NetworkHosts name the nodes hosting a router (one)
	// or a DHCP network (dhcp_agents_per_network), as the scheduler bound
	// them (neutron's routerl3agentbindings and networkdhcpagentbindings);
	// [] when none.
	RouterHosts(ctx context.Context, routerID string) ([]string, error)
	NetworkHosts(ctx context.Context, networkID string) ([]string, error)
	// RouterBindings and NetworkBindings list every binding, by ID.
	RouterBindings(ctx context.Context) ([]Binding, error)
	NetworkBindings(ctx context.Context) ([]Binding, error)
}

// Writer changes records. Put* create or replace by ID.
type Writer interface {
	PutProject(ctx context.Context, p Project) error
	PutNetwork(ctx context.Context, n Network) error
	DeleteNetwork(ctx context.Context, id string) error // with its subnets and ports
	PutSubnet(ctx context.Context, s Subnet) error
	DeleteSubnet(ctx context.Context, id string) error
	PutRouter(ctx context.Context, r Router) error
	DeleteRouter(ctx context.Context, id string) error // with its interface ports
	PutPort(ctx context.Context, p Port) error
	DeletePort(ctx context.Context, id string) error
	PutInstance(ctx context.Context, i Instance) error
	DeleteInstance(ctx context.Context, id string) error // with its ports and password
	SetSetting(ctx context.Context, key, value string) error
	UnsetSetting(ctx context.Context, key string) error
	// SetPassword stores a password once; a second call returns ErrConflict.
	SetPassword(ctx context.Context, instanceID, password string) error

	// RegisterNode creates or replaces a node, its heartbeat now. It never
	// moves the generation.
	RegisterNode(ctx context.Context, n Node) error
	// Heartbeat stamps a node's heartbeat now (ErrNotFound when it is not
	// registered). It never moves the generation, and on the Store itself
	// it does not wait for other writers.
	Heartbeat(ctx context.Context, name string) error
	// DeleteNode removes a node and its bindings.
	DeleteNode(ctx context.Context, name string) error
	// SetRouterHosts and SetNetworkHosts replace the nodes a router (at
	// most one) or a DHCP network is bound to; a change moves the
	// generation, so every serve replans.
	SetRouterHosts(ctx context.Context, routerID string, nodes []string) error
	SetNetworkHosts(ctx context.Context, networkID string, nodes []string) error
}

// Tx is a transaction: reads see its own writes.
type Tx interface {
	Reader
	Writer
}

// Store is a handle on a store. Its own Reader and Writer methods each run
// in a transaction of their own; Update groups several.
type Store interface {
	Reader
	Writer
	// Update runs fn in one transaction: all of it commits, or none of it.
	Update(ctx context.Context, fn func(tx Tx) error) error
	Close() error
}
