package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The record layer of nodes and their bindings (neutron's agents,
// routerl3agentbindings and networkdhcpagentbindings). A node's own rows
// are no served data: registering and heartbeats never move the
// generation, so caches and reconciles stay put. Bindings are: which node
// builds a router's or a network's data plane, so changing them does.

const nodeCols = `name, components, admin_url, admin_socket, version, started_at, heartbeat_at`

func scanNode(s interface{ Scan(...any) error }) (Node, error) {
	var n Node
	var comps string
	var st, hb int64
	if err := s.Scan(&n.Name, &comps, &n.AdminURL, &n.AdminSocket, &n.Version, &st, &hb); err != nil {
		return Node{}, err
	}
	if err := json.Unmarshal([]byte(comps), &n.Components); err != nil {
		return Node{}, fmt.Errorf("node %s components: %w", n.Name, err)
	}
	n.StartedAt, n.HeartbeatAt = fromNanos(st), fromNanos(hb)
	return n, nil
}

func (t *sqlTx) ListNodes(ctx context.Context) ([]Node, error) {
	return queryAll(ctx, t.q, "list nodes", `SELECT `+nodeCols+` FROM nodes ORDER BY name`,
		func(rows *sql.Rows) (Node, error) { return scanNode(rows) })
}

func (t *sqlTx) GetNode(ctx context.Context, name string) (Node, error) {
	n, err := scanNode(t.q.QueryRowContext(ctx, `SELECT `+nodeCols+` FROM nodes WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Node{}, notFound("node", name)
	}
	if err != nil {
		return Node{}, fmt.Errorf("node %q: %w", name, err)
	}
	return n, nil
}

// RegisterNode creates or replaces a node's row, its heartbeat now (and
// StartedAt now when zero). It leaves the generation alone.
func (t *sqlTx) RegisterNode(ctx context.Context, n Node) error {
	if err := CheckNodeName(n.Name); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	canonicalNode(&n)
	comps, err := json.Marshal(n.Components)
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.Name, err)
	}
	ts := now()
	_, err = t.q.ExecContext(ctx, `INSERT INTO nodes (`+nodeCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET components = excluded.components, admin_url = excluded.admin_url,
			admin_socket = excluded.admin_socket, version = excluded.version,
			started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
		n.Name, string(comps), n.AdminURL, n.AdminSocket, n.Version, nanosOr(n.StartedAt, ts), ts.UnixNano())
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.Name, t.mapErr(err))
	}
	return nil
}

// Heartbeat stamps a node's heartbeat now: one UPDATE of its own row,
// which neither moves the generation nor waits for other writers.
// ErrNotFound says the node is not registered (deleted by an operator,
// say): register it again.
func (t *sqlTx) Heartbeat(ctx context.Context, name string) error {
	res, err := t.q.ExecContext(ctx, `UPDATE nodes SET heartbeat_at = ? WHERE name = ?`, now().UnixNano(), name)
	if err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", name, t.mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", name, err)
	} else if n == 0 {
		return notFound("node", name)
	}
	return nil
}

// DeleteNode removes a node with its bindings; dropping bindings moves
// the generation (their routers and networks are then nobody's until the
// scheduler binds them again).
func (t *sqlTx) DeleteNode(ctx context.Context, name string) error {
	for _, table := range []string{"router_bindings", "network_bindings"} {
		res, err := t.q.ExecContext(ctx, `DELETE FROM `+table+` WHERE node = ?`, name)
		if err != nil {
			return fmt.Errorf("delete node %s: %w", name, err)
		}
		if err := t.wroteRows(res, "delete node "+name); err != nil {
			return err
		}
	}
	res, err := t.q.ExecContext(ctx, `DELETE FROM nodes WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete node %s: %w", name, err)
	} else if n == 0 {
		return notFound("node", name)
	}
	return nil
}

// hostsOf lists the nodes table binds id to, by name.
func (t *sqlTx) hostsOf(ctx context.Context, table, col, id string) ([]string, error) {
	hosts, err := queryAll(ctx, t.q, "hosts of "+id, `SELECT node FROM `+table+` WHERE `+col+` = ? ORDER BY node`,
		func(rows *sql.Rows) (string, error) {
			var n string
			return n, rows.Scan(&n)
		}, id)
	if hosts == nil && err == nil {
		hosts = []string{}
	}
	return hosts, err
}

func (t *sqlTx) RouterHosts(ctx context.Context, routerID string) ([]string, error) {
	return t.hostsOf(ctx, "router_bindings", "router_id", routerID)
}

func (t *sqlTx) NetworkHosts(ctx context.Context, networkID string) ([]string, error) {
	return t.hostsOf(ctx, "network_bindings", "network_id", networkID)
}

// bindings lists every binding of table.
func (t *sqlTx) bindings(ctx context.Context, table, col string) ([]Binding, error) {
	return queryAll(ctx, t.q, "list "+table, `SELECT `+col+`, node FROM `+table+` ORDER BY `+col+`, node`,
		func(rows *sql.Rows) (Binding, error) {
			var b Binding
			return b, rows.Scan(&b.ID, &b.Node)
		})
}

func (t *sqlTx) RouterBindings(ctx context.Context) ([]Binding, error) {
	return t.bindings(ctx, "router_bindings", "router_id")
}

func (t *sqlTx) NetworkBindings(ctx context.Context) ([]Binding, error) {
	return t.bindings(ctx, "network_bindings", "network_id")
}

// SetRouterHosts binds a router to nodes (at most one: the primary key
// holds that against any number of writers), or unbinds it ([]).
func (t *sqlTx) SetRouterHosts(ctx context.Context, routerID string, nodes []string) error {
	if len(nodes) > 1 {
		return fmt.Errorf("router %s: one node hosts a router, not %d", routerID, len(nodes))
	}
	return t.setHosts(ctx, "router", "routers", "router_bindings", "router_id", routerID, nodes)
}

// SetNetworkHosts binds a DHCP network to nodes, replacing its bindings.
func (t *sqlTx) SetNetworkHosts(ctx context.Context, networkID string, nodes []string) error {
	return t.setHosts(ctx, "network", "networks", "network_bindings", "network_id", networkID, nodes)
}

// setHosts makes id's bindings in table exactly nodes: it removes those
// that go and adds those that come, and marks the transaction dirty only
// when that changed anything.
func (t *sqlTx) setHosts(ctx context.Context, kind, records, table, col, id string, nodes []string) error {
	want := slices.Compact(slices.Sorted(slices.Values(nodes)))
	if len(want) != len(nodes) {
		return fmt.Errorf("%s %s: node listed twice in %v", kind, id, nodes)
	}
	if ok, err := t.exists(ctx, records, id); err != nil {
		return fmt.Errorf("bind %s %s: %w", kind, id, err)
	} else if !ok {
		return fmt.Errorf("bind %s: %w", kind, notFound(kind, id))
	}
	cur, err := t.hostsOf(ctx, table, col, id)
	if err != nil {
		return fmt.Errorf("bind %s %s: %w", kind, id, err)
	}
	for _, n := range cur {
		if slices.Contains(want, n) {
			continue
		}
		if _, err := t.q.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+col+` = ? AND node = ?`, id, n); err != nil {
			return fmt.Errorf("unbind %s %s from node %s: %w", kind, id, n, err)
		}
		t.write()
	}
	ts := now().UnixNano()
	for _, n := range want {
		if slices.Contains(cur, n) {
			continue
		}
		if _, err := t.GetNode(ctx, n); err != nil {
			return fmt.Errorf("bind %s %s: %w", kind, id, err)
		}
		if _, err := t.q.ExecContext(ctx, `INSERT INTO `+table+` (`+col+`, node, bound_at) VALUES (?, ?, ?)`, id, n, ts); err != nil {
			return fmt.Errorf("bind %s %s to node %s: %w", kind, id, n, t.mapErr(err))
		}
		t.write()
	}
	return nil
}
