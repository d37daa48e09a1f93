package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// The SQL record layer: one set of statements for every SQL backend. It
// reads and writes rows; what a valid record is, and its canonical form,
// is rules.go's. Statements use "?" placeholders and no backend's
// extensions; the dialect rebinds them and supplies the few differences.

// querier is what *sql.DB and *sql.Tx share, so one set of record
// functions serves single-statement reads, read snapshots and writes.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// sqlTx reads and writes records through q. dirty records that a write
// changed something served, so that Update bumps the generation.
type sqlTx struct {
	q       querier
	d       *dialect
	dirty   bool
	copying bool       // Copy: keep the source's updated_at stamps
	stmts   *stmtCache // set for reads from the reader pool
	tx      *sql.Tx    // set in a read transaction with stmts
}

var _ Tx = (*sqlTx)(nil)

func now() time.Time { return time.Now().UTC() }

func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// nanosOr is t in ns, or def when t is zero (the store stamps it).
func nanosOr(t time.Time, def time.Time) int64 {
	if t.IsZero() {
		return def.UnixNano()
	}
	return t.UnixNano()
}

func (t *sqlTx) mapErr(err error) error { return t.d.mapErr(err) }

// updatedAt is the stamp a put writes: now, or the record's own in a Copy.
func (t *sqlTx) updatedAt(v, ts time.Time) int64 {
	if t.copying {
		return nanosOr(v, ts)
	}
	return ts.UnixNano()
}

// lookupRef finds the ID of the record of table whose id, else whose name,
// is ref. Names are unique, so the answer is one row or none.
func (t *sqlTx) lookupRef(ctx context.Context, table, kind, ref string) (string, error) {
	var id string
	err := t.queryRow(ctx,
		`SELECT id FROM `+table+` WHERE id = ? UNION ALL SELECT id FROM `+table+` WHERE name = ? AND name <> '' LIMIT 1`, ref, ref).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound(kind, ref)
	}
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", kind, ref, err)
	}
	return id, nil
}

// checkName refuses a name another record of table already has.
func (t *sqlTx) checkName(ctx context.Context, table, kind, id, name string) error {
	if name == "" {
		return nil
	}
	var other string
	err := t.q.QueryRowContext(ctx, `SELECT id FROM `+table+` WHERE name = ? AND id <> ?`, name, id).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("%s %q: check name: %w", kind, name, err)
	}
	return fmt.Errorf("%s %q: name already used by %s %s: %w", kind, name, kind, other, ErrConflict)
}

// exists reports whether table has a row with id.
func (t *sqlTx) exists(ctx context.Context, table, id string) (bool, error) {
	var n int
	err := t.q.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE id = ?`, id).Scan(&n)
	return n > 0, err
}

func (t *sqlTx) write() { t.dirty = true }

// stmt is q prepared for this read, or nil to run it unprepared. Reads
// from the reader pool (straight or in a read transaction) reuse cached
// statements: parsing is about half the cost of each query.
func (t *sqlTx) stmt(ctx context.Context, q string) *sql.Stmt {
	if t.stmts == nil {
		return nil
	}
	st := t.stmts.stmt(ctx, t.d.rebind(q))
	if st != nil && t.tx != nil {
		st = t.tx.StmtContext(ctx, st)
	}
	return st
}

func (t *sqlTx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.q.QueryContext(ctx, q, args...)
}

func (t *sqlTx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if st := t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.q.QueryRowContext(ctx, q, args...)
}

// Generation reads the counter as this transaction sees it.
func (t *sqlTx) Generation(ctx context.Context) (uint64, error) {
	rows, err := t.query(ctx, `SELECT generation FROM counters WHERE id = 1`)
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", t.mapErr(err))
	}
	defer rows.Close()
	var g int64
	if !rows.Next() {
		return 0, fmt.Errorf("read generation: no counter row: %w", errors.Join(rows.Err(), sql.ErrNoRows))
	}
	if err := rows.Scan(&g); err != nil {
		return 0, fmt.Errorf("read generation: %w", t.mapErr(err))
	}
	return uint64(g), rows.Close()
}

// ---- projects

func (t *sqlTx) GetProject(ctx context.Context, ref string) (Project, error) {
	id, err := t.lookupRef(ctx, "projects", "project", ref)
	if err != nil {
		return Project{}, err
	}
	var p Project
	err = t.queryRow(ctx, `SELECT id, name FROM projects WHERE id = ?`, id).Scan(&p.ID, &p.Name)
	if err != nil {
		return Project{}, fmt.Errorf("project %q: %w", ref, err)
	}
	return p, nil
}

func (t *sqlTx) ListProjects(ctx context.Context) ([]Project, error) {
	return queryAll(ctx, t.q, "list projects", `SELECT id, name FROM projects ORDER BY name, id`,
		func(rows *sql.Rows) (Project, error) {
			var p Project
			return p, rows.Scan(&p.ID, &p.Name)
		})
}

func (t *sqlTx) PutProject(ctx context.Context, p Project) error {
	if err := required("project", "id", p.ID); err != nil {
		return err
	}
	if same, err := unchanged(ctx, t.GetProject, p.ID, p, nil); same || err != nil {
		return err
	}
	t.write()
	if err := t.checkName(ctx, "projects", "project", p.ID, p.Name); err != nil {
		return err
	}
	_, err := t.q.ExecContext(ctx, `INSERT INTO projects (id, name) VALUES (?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name`, p.ID, p.Name)
	if err != nil {
		return fmt.Errorf("put project %s: %w", p.ID, t.mapErr(err))
	}
	return nil
}

// ---- networks

const networkCols = `id, name, project_id, mtu, bridge, vlan, created_at, updated_at`

func scanNetwork(s interface{ Scan(...any) error }) (Network, error) {
	var n Network
	var c, u int64
	if err := s.Scan(&n.ID, &n.Name, &n.ProjectID, &n.MTU, &n.Bridge, &n.VLAN, &c, &u); err != nil {
		return Network{}, err
	}
	n.CreatedAt, n.UpdatedAt = fromNanos(c), fromNanos(u)
	return n, nil
}

func (t *sqlTx) GetNetwork(ctx context.Context, ref string) (Network, error) {
	id, err := t.lookupRef(ctx, "networks", "network", ref)
	if err != nil {
		return Network{}, err
	}
	n, err := scanNetwork(t.queryRow(ctx, `SELECT `+networkCols+` FROM networks WHERE id = ?`, id))
	if err != nil {
		return Network{}, fmt.Errorf("network %q: %w", ref, err)
	}
	return n, nil
}

func (t *sqlTx) ListNetworks(ctx context.Context) ([]Network, error) {
	return queryAll(ctx, t.q, "list networks", `SELECT `+networkCols+` FROM networks ORDER BY created_at, rowid`,
		func(rows *sql.Rows) (Network, error) { return scanNetwork(rows) })
}

func (t *sqlTx) PutNetwork(ctx context.Context, n Network) error {
	if err := required("network", "id", n.ID); err != nil {
		return err
	}
	if err := CheckAttach(n.Bridge, n.VLAN); err != nil {
		return fmt.Errorf("put network %s: %w", n.ID, err)
	}
	if same, err := unchanged(ctx, t.GetNetwork, n.ID, n, stampNetwork); same || err != nil {
		return err
	}
	t.write()
	if err := t.checkName(ctx, "networks", "network", n.ID, n.Name); err != nil {
		return err
	}
	ts := now()
	_, err := t.q.ExecContext(ctx, `INSERT INTO networks (`+networkCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, project_id = excluded.project_id,
			mtu = excluded.mtu, bridge = excluded.bridge, vlan = excluded.vlan, updated_at = excluded.updated_at`,
		n.ID, n.Name, n.ProjectID, n.MTU, n.Bridge, n.VLAN, nanosOr(n.CreatedAt, ts), t.updatedAt(n.UpdatedAt, ts))
	if err != nil {
		return fmt.Errorf("put network %s: %w", n.ID, t.mapErr(err))
	}
	return nil
}

// DeleteNetwork removes a network with its ports (and their addresses) and
// its subnets.
func (t *sqlTx) DeleteNetwork(ctx context.Context, id string) error {
	t.write()
	return t.deleteWith(ctx, "network", id,
		`DELETE FROM fixed_ips WHERE network_id = ?`,
		`DELETE FROM ports WHERE network_id = ?`,
		`DELETE FROM subnets WHERE network_id = ?`,
		`DELETE FROM networks WHERE id = ?`)
}

// deleteWith runs stmts (each taking id) and reports ErrNotFound when the
// last, which deletes the record itself, removed nothing.
func (t *sqlTx) deleteWith(ctx context.Context, kind, id string, stmts ...string) error {
	var res sql.Result
	for _, s := range stmts {
		var err error
		if res, err = t.q.ExecContext(ctx, s, id); err != nil {
			return fmt.Errorf("delete %s %s: %w", kind, id, t.mapErr(err))
		}
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	if n == 0 {
		return notFound(kind, id)
	}
	return nil
}

// ---- subnets

const subnetCols = `id, network_id, name, ip_version, cidr, gateway_ip, enable_dhcp, ipv6_address_mode, dns_nameservers, host_routes`

func scanSubnet(s interface{ Scan(...any) error }) (Subnet, error) {
	var sn Subnet
	var dns, routes string
	if err := s.Scan(&sn.ID, &sn.NetworkID, &sn.Name, &sn.IPVersion, &sn.CIDR, &sn.GatewayIP,
		&sn.EnableDHCP, &sn.IPv6AddressMode, &dns, &routes); err != nil {
		return Subnet{}, err
	}
	if err := json.Unmarshal([]byte(dns), &sn.DNSNameservers); err != nil {
		return Subnet{}, fmt.Errorf("subnet %s dns_nameservers: %w", sn.ID, err)
	}
	if err := json.Unmarshal([]byte(routes), &sn.HostRoutes); err != nil {
		return Subnet{}, fmt.Errorf("subnet %s host_routes: %w", sn.ID, err)
	}
	return sn, nil
}

func (t *sqlTx) GetSubnet(ctx context.Context, id string) (Subnet, error) {
	sn, err := scanSubnet(t.queryRow(ctx, `SELECT `+subnetCols+` FROM subnets WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Subnet{}, notFound("subnet", id)
	}
	if err != nil {
		return Subnet{}, fmt.Errorf("subnet %q: %w", id, err)
	}
	return sn, nil
}

func (t *sqlTx) ListSubnets(ctx context.Context, networkID string) ([]Subnet, error) {
	q := `SELECT ` + subnetCols + ` FROM subnets WHERE ? = '' OR network_id = ? ORDER BY rowid`
	return queryAll(ctx, t.q, "list subnets", q,
		func(rows *sql.Rows) (Subnet, error) { return scanSubnet(rows) }, networkID, networkID)
}

func (t *sqlTx) PutSubnet(ctx context.Context, s Subnet) error {
	if err := required("subnet", "id", s.ID); err != nil {
		return err
	}
	if err := checkSubnet(&s); err != nil {
		return err
	}
	if same, err := unchanged(ctx, t.GetSubnet, s.ID, s, nil); same || err != nil {
		return err
	}
	t.write()
	if ok, err := t.exists(ctx, "networks", s.NetworkID); err != nil {
		return fmt.Errorf("put subnet %s: %w", s.ID, err)
	} else if !ok {
		return fmt.Errorf("put subnet %s: %w", s.ID, notFound("network", s.NetworkID))
	}
	// Addresses on the subnet belong to ports of its network; moving it
	// would leave them on the wrong network.
	var port string
	err := t.q.QueryRowContext(ctx, `SELECT port_id FROM fixed_ips WHERE subnet_id = ? AND network_id <> ? LIMIT 1`,
		s.ID, s.NetworkID).Scan(&port)
	if err == nil {
		return fmt.Errorf("put subnet %s: cannot move to network %s while port %s has an address on it: %w",
			s.ID, s.NetworkID, port, ErrConflict)
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("put subnet %s: %w", s.ID, err)
	}
	dns, err := json.Marshal(s.DNSNameservers)
	if err != nil {
		return fmt.Errorf("put subnet %s: %w", s.ID, err)
	}
	routes, err := json.Marshal(s.HostRoutes)
	if err != nil {
		return fmt.Errorf("put subnet %s: %w", s.ID, err)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO subnets (`+subnetCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET network_id = excluded.network_id, name = excluded.name,
			ip_version = excluded.ip_version, cidr = excluded.cidr, gateway_ip = excluded.gateway_ip,
			enable_dhcp = excluded.enable_dhcp, ipv6_address_mode = excluded.ipv6_address_mode,
			dns_nameservers = excluded.dns_nameservers, host_routes = excluded.host_routes`,
		s.ID, s.NetworkID, s.Name, s.IPVersion, s.CIDR, s.GatewayIP, s.EnableDHCP, s.IPv6AddressMode,
		string(dns), string(routes))
	if err != nil {
		return fmt.Errorf("put subnet %s: %w", s.ID, t.mapErr(err))
	}
	return nil
}

// DeleteSubnet removes a subnet. As in neutron, the addresses DHCP ports
// hold on it go with it; any other port's address makes it in use.
func (t *sqlTx) DeleteSubnet(ctx context.Context, id string) error {
	t.write()
	if _, err := t.q.ExecContext(ctx, `DELETE FROM fixed_ips WHERE subnet_id = ?
		AND port_id IN (SELECT id FROM ports WHERE device_owner = ?)`, id, OwnerDHCP); err != nil {
		return fmt.Errorf("delete subnet %s: %w", id, err)
	}
	var port, ip string
	err := t.q.QueryRowContext(ctx, `SELECT port_id, ip_address FROM fixed_ips WHERE subnet_id = ? LIMIT 1`, id).Scan(&port, &ip)
	if err == nil {
		return fmt.Errorf("delete subnet %s: in use by port %s (%s): %w", id, port, ip, ErrConflict)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("delete subnet %s: %w", id, err)
	}
	return t.deleteWith(ctx, "subnet", id, `DELETE FROM subnets WHERE id = ?`)
}

// ---- routers

const routerCols = `id, name, project_id, node, created_at, updated_at`

func scanRouter(s interface{ Scan(...any) error }) (Router, error) {
	var r Router
	var c, u int64
	if err := s.Scan(&r.ID, &r.Name, &r.ProjectID, &r.Node, &c, &u); err != nil {
		return Router{}, err
	}
	r.CreatedAt, r.UpdatedAt = fromNanos(c), fromNanos(u)
	return r, nil
}

func (t *sqlTx) GetRouter(ctx context.Context, ref string) (Router, error) {
	id, err := t.lookupRef(ctx, "routers", "router", ref)
	if err != nil {
		return Router{}, err
	}
	r, err := scanRouter(t.q.QueryRowContext(ctx, `SELECT `+routerCols+` FROM routers WHERE id = ?`, id))
	if err != nil {
		return Router{}, fmt.Errorf("router %q: %w", ref, err)
	}
	return r, nil
}

func (t *sqlTx) ListRouters(ctx context.Context) ([]Router, error) {
	return queryAll(ctx, t.q, "list routers", `SELECT `+routerCols+` FROM routers ORDER BY created_at, rowid`,
		func(rows *sql.Rows) (Router, error) { return scanRouter(rows) })
}

func (t *sqlTx) PutRouter(ctx context.Context, r Router) error {
	if err := required("router", "id", r.ID); err != nil {
		return err
	}
	if r.Node != "" {
		if err := CheckNodeName(r.Node); err != nil {
			return fmt.Errorf("put router %s: pin: %w", r.ID, err)
		}
	}
	if same, err := unchanged(ctx, t.GetRouter, r.ID, r, stampRouter); same || err != nil {
		return err
	}
	t.write()
	if err := t.checkName(ctx, "routers", "router", r.ID, r.Name); err != nil {
		return err
	}
	ts := now()
	_, err := t.q.ExecContext(ctx, `INSERT INTO routers (`+routerCols+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, project_id = excluded.project_id,
			node = excluded.node, updated_at = excluded.updated_at`,
		r.ID, r.Name, r.ProjectID, r.Node, nanosOr(r.CreatedAt, ts), t.updatedAt(r.UpdatedAt, ts))
	if err != nil {
		return fmt.Errorf("put router %s: %w", r.ID, t.mapErr(err))
	}
	return nil
}

// routerOwners are the device owners of a router's interfaces in neutron
// (plain, HA and DVR).
var routerOwners = []string{OwnerRouterInterface, "network:ha_router_replicated_interface", "network:router_interface_distributed"}

// DeleteRouter removes a router with its interface ports.
func (t *sqlTx) DeleteRouter(ctx context.Context, id string) error {
	t.write()
	if _, err := t.q.ExecContext(ctx, `DELETE FROM ports WHERE device_id = ? AND device_owner IN (?, ?, ?)`,
		id, routerOwners[0], routerOwners[1], routerOwners[2]); err != nil {
		return fmt.Errorf("delete router %s: ports: %w", id, err)
	}
	return t.deleteWith(ctx, "router", id, `DELETE FROM routers WHERE id = ?`)
}

// ---- ports

func (t *sqlTx) GetPort(ctx context.Context, id string) (Port, error) {
	ports, err := t.listPorts(ctx, `p.id = ?`, []any{id})
	if err != nil {
		return Port{}, fmt.Errorf("port %q: %w", id, err)
	}
	if len(ports) == 0 {
		return Port{}, notFound("port", id)
	}
	return ports[0], nil
}

// ListPorts selects ports like neutron's get_ports: fields AND, values
// within a field OR; a port matches IPAddresses if any of its addresses do.
func (t *sqlTx) ListPorts(ctx context.Context, f PortFilter) ([]Port, error) {
	var where []string
	var args []any
	// Without statistics SQLite would drive a network-and-address lookup
	// from the network's index (every port of the network). A unary "+"
	// keeps the less selective columns from being chosen as the index, so
	// an address, else a MAC, else a device, picks the few rows.
	byAddr := len(f.IPAddresses) > 0 || len(f.MACAddresses) > 0
	in := func(col string, vals []string, canon func(string) string, index bool) {
		if len(vals) == 0 {
			return
		}
		if !index {
			col = t.d.noIndex(col)
		}
		where = append(where, col+` IN (`+placeholders(len(vals))+`)`)
		for _, v := range vals {
			if canon != nil {
				v = canon(v)
			}
			args = append(args, v)
		}
	}
	in("p.network_id", f.NetworkIDs, nil, !byAddr && len(f.DeviceIDs) == 0)
	in("p.device_id", f.DeviceIDs, nil, !byAddr)
	in("p.device_owner", f.DeviceOwners, nil, false)
	in("p.mac_address", f.MACAddresses, canonicalMAC, len(f.IPAddresses) == 0)
	if len(f.IPAddresses) > 0 {
		where = append(where, `p.id IN (SELECT port_id FROM fixed_ips WHERE ip_address IN (`+placeholders(len(f.IPAddresses))+`))`)
		for _, ip := range f.IPAddresses {
			args = append(args, canonicalIP(ip))
		}
	}
	cond := "1 = 1"
	if len(where) > 0 {
		cond = strings.Join(where, " AND ")
	}
	ports, err := t.listPorts(ctx, cond, args)
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	return ports, nil
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// listPorts reads the ports matching cond with their addresses in one
// statement (so one snapshot), in creation order.
func (t *sqlTx) listPorts(ctx context.Context, cond string, args []any) ([]Port, error) {
	rows, err := t.query(ctx, `SELECT p.id, p.network_id, p.project_id, p.mac_address, p.device_id,
			p.device_owner, p.security_groups, p.binding_host_id, p.created_at, f.subnet_id, f.ip_address
		FROM ports p LEFT JOIN fixed_ips f ON f.port_id = p.id
		WHERE `+cond+`
		ORDER BY p.created_at, p.rowid, f.pos`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Port
	for rows.Next() {
		var p Port
		var created int64
		var groups string
		var subnet, ip sql.NullString
		if err := rows.Scan(&p.ID, &p.NetworkID, &p.ProjectID, &p.MACAddress, &p.DeviceID,
			&p.DeviceOwner, &groups, &p.BindingHostID, &created, &subnet, &ip); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != p.ID {
			if groups != "[]" { // none reads back as nil, as it was put
				if err := json.Unmarshal([]byte(groups), &p.SecurityGroups); err != nil {
					return nil, fmt.Errorf("port %s security_groups: %w", p.ID, err)
				}
			}
			p.CreatedAt = fromNanos(created)
			out = append(out, p)
		}
		if subnet.Valid {
			last := &out[len(out)-1]
			last.FixedIPs = append(last.FixedIPs, FixedIP{SubnetID: subnet.String, IPAddress: ip.String})
		}
	}
	return out, rows.Err()
}

// PutPort creates or replaces a port and its addresses. Each address must
// lie in its subnet, the subnet on the port's network, and no other port
// of the network may hold it.
func (t *sqlTx) PutPort(ctx context.Context, p Port) error {
	if err := required("port", "id", p.ID); err != nil {
		return err
	}
	if err := canonicalPort(&p); err != nil {
		return err
	}
	if same, err := unchanged(ctx, t.GetPort, p.ID, p, stampPort); same || err != nil {
		return err
	}
	t.write()
	if ok, err := t.exists(ctx, "networks", p.NetworkID); err != nil {
		return fmt.Errorf("put port %s: %w", p.ID, err)
	} else if !ok {
		return fmt.Errorf("put port %s: %w", p.ID, notFound("network", p.NetworkID))
	}
	if err := t.checkPortAddrs(ctx, &p); err != nil {
		return err
	}
	if p.MACAddress != "" {
		var other string
		err := t.q.QueryRowContext(ctx, `SELECT id FROM ports WHERE network_id = ? AND mac_address = ? AND id <> ?`,
			p.NetworkID, p.MACAddress, p.ID).Scan(&other)
		if err == nil {
			return fmt.Errorf("put port %s: mac address %s already used by port %s on network %s: %w",
				p.ID, p.MACAddress, other, p.NetworkID, ErrConflict)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("put port %s: %w", p.ID, err)
		}
	}
	if p.SecurityGroups == nil {
		p.SecurityGroups = []string{} // none is [], not null
	}
	groups, err := json.Marshal(p.SecurityGroups)
	if err != nil {
		return fmt.Errorf("put port %s: security_groups: %w", p.ID, err)
	}
	ts := now()
	if _, err := t.q.ExecContext(ctx, `INSERT INTO ports (id, network_id, project_id, mac_address, device_id, device_owner,
			security_groups, binding_host_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET network_id = excluded.network_id, project_id = excluded.project_id,
			mac_address = excluded.mac_address, device_id = excluded.device_id, device_owner = excluded.device_owner,
			security_groups = excluded.security_groups, binding_host_id = excluded.binding_host_id`,
		p.ID, p.NetworkID, p.ProjectID, p.MACAddress, p.DeviceID, p.DeviceOwner, string(groups), p.BindingHostID,
		nanosOr(p.CreatedAt, ts)); err != nil {
		return fmt.Errorf("put port %s: %w", p.ID, t.mapErr(err))
	}
	if _, err := t.q.ExecContext(ctx, `DELETE FROM fixed_ips WHERE port_id = ?`, p.ID); err != nil {
		return fmt.Errorf("put port %s: %w", p.ID, err)
	}
	for i, f := range p.FixedIPs {
		if _, err := t.q.ExecContext(ctx, `INSERT INTO fixed_ips (port_id, pos, network_id, subnet_id, ip_address)
			VALUES (?, ?, ?, ?, ?)`, p.ID, i, p.NetworkID, f.SubnetID, f.IPAddress); err != nil {
			return fmt.Errorf("put port %s: address %s: %w", p.ID, f.IPAddress, t.mapErr(err))
		}
	}
	return nil
}

// checkPortAddrs checks p's (canonical) addresses against their subnets
// and the other ports of the network.
func (t *sqlTx) checkPortAddrs(ctx context.Context, p *Port) error {
	for _, f := range p.FixedIPs {
		addr := netip.MustParseAddr(f.IPAddress) // canonicalPort parsed it
		var netID, cidr string
		err := t.q.QueryRowContext(ctx, `SELECT network_id, cidr FROM subnets WHERE id = ?`, f.SubnetID).Scan(&netID, &cidr)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("put port %s: %w", p.ID, notFound("subnet", f.SubnetID))
		} else if err != nil {
			return fmt.Errorf("put port %s: %w", p.ID, err)
		}
		if netID != p.NetworkID {
			return fmt.Errorf("put port %s: subnet %s is on network %s, not the port's network %s", p.ID, f.SubnetID, netID, p.NetworkID)
		}
		if pfx, err := netip.ParsePrefix(cidr); err == nil && !pfx.Contains(addr) {
			return fmt.Errorf("put port %s: address %s is not in subnet %s (%s)", p.ID, f.IPAddress, f.SubnetID, cidr)
		}
		var other string
		err = t.q.QueryRowContext(ctx, `SELECT port_id FROM fixed_ips WHERE network_id = ? AND ip_address = ? AND port_id <> ?`,
			p.NetworkID, f.IPAddress, p.ID).Scan(&other)
		if err == nil {
			return fmt.Errorf("put port %s: address %s already used by port %s on network %s: %w",
				p.ID, f.IPAddress, other, p.NetworkID, ErrConflict)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("put port %s: %w", p.ID, err)
		}
	}
	return nil
}

func (t *sqlTx) DeletePort(ctx context.Context, id string) error {
	t.write()
	return t.deleteWith(ctx, "port", id, `DELETE FROM fixed_ips WHERE port_id = ?`, `DELETE FROM ports WHERE id = ?`)
}

// ---- instances

const instanceCols = `id, ec2_id, name, hostname, project_id, availability_zone, flavor, launch_index,
	meta, keys, user_data, config_drive, admin_pass, created_at, updated_at, metadata_tokens`

func scanInstance(s interface{ Scan(...any) error }) (Instance, error) {
	var i Instance
	var meta, keys string
	var c, u int64
	if err := s.Scan(&i.ID, &i.EC2ID, &i.Name, &i.Hostname, &i.ProjectID, &i.AvailabilityZone, &i.Flavor,
		&i.LaunchIndex, &meta, &keys, &i.UserData, &i.ConfigDrive, &i.AdminPass, &c, &u, &i.MetadataTokens); err != nil {
		return Instance{}, err
	}
	if len(i.UserData) == 0 {
		i.UserData = nil
	}
	if err := json.Unmarshal([]byte(meta), &i.Meta); err != nil {
		return Instance{}, fmt.Errorf("instance %s meta: %w", i.ID, err)
	}
	if err := json.Unmarshal([]byte(keys), &i.Keys); err != nil {
		return Instance{}, fmt.Errorf("instance %s keys: %w", i.ID, err)
	}
	i.CreatedAt, i.UpdatedAt = fromNanos(c), fromNanos(u)
	return i, nil
}

func (t *sqlTx) GetInstance(ctx context.Context, ref string) (Instance, error) {
	id, err := t.lookupRef(ctx, "instances", "instance", ref)
	if err != nil {
		return Instance{}, err
	}
	i, err := scanInstance(t.queryRow(ctx, `SELECT `+instanceCols+` FROM instances WHERE id = ?`, id))
	if err != nil {
		return Instance{}, fmt.Errorf("instance %q: %w", ref, err)
	}
	return i, nil
}

func (t *sqlTx) ListInstances(ctx context.Context) ([]Instance, error) {
	return queryAll(ctx, t.q, "list instances", `SELECT `+instanceCols+` FROM instances ORDER BY ec2_id`,
		func(rows *sql.Rows) (Instance, error) { return scanInstance(rows) })
}

// PutInstance creates or replaces an instance. EC2ID 0 means "assign one":
// a new instance gets the next integer, an existing one keeps its own.
func (t *sqlTx) PutInstance(ctx context.Context, i Instance) error {
	if err := required("instance", "id", i.ID); err != nil {
		return err
	}
	if err := CheckMetadataTokens(i.MetadataTokens); err != nil {
		return fmt.Errorf("put instance %s: %w", i.ID, err)
	}
	canonicalInstance(&i)
	if same, err := unchanged(ctx, t.GetInstance, i.ID, i, stampInstance); same || err != nil {
		return err
	}
	t.write()
	if err := t.checkName(ctx, "instances", "instance", i.ID, i.Name); err != nil {
		return err
	}
	ec2, err := t.ec2ID(ctx, i)
	if err != nil {
		return err
	}
	meta, err := json.Marshal(i.Meta) // an object in the items' order
	if err != nil {
		return fmt.Errorf("put instance %s: meta: %w", i.ID, err)
	}
	keys, err := json.Marshal(i.Keys)
	if err != nil {
		return fmt.Errorf("put instance %s: keys: %w", i.ID, err)
	}
	var ud any
	if len(i.UserData) > 0 {
		ud = i.UserData
	}
	ts := now()
	_, err = t.q.ExecContext(ctx, `INSERT INTO instances (`+instanceCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET ec2_id = excluded.ec2_id, name = excluded.name,
			hostname = excluded.hostname, project_id = excluded.project_id,
			availability_zone = excluded.availability_zone, flavor = excluded.flavor,
			launch_index = excluded.launch_index, meta = excluded.meta, keys = excluded.keys,
			user_data = excluded.user_data, config_drive = excluded.config_drive,
			admin_pass = excluded.admin_pass, updated_at = excluded.updated_at,
			metadata_tokens = excluded.metadata_tokens`,
		i.ID, ec2, i.Name, i.Hostname, i.ProjectID, i.AvailabilityZone, i.Flavor, i.LaunchIndex,
		string(meta), string(keys), ud, i.ConfigDrive, i.AdminPass, nanosOr(i.CreatedAt, ts), t.updatedAt(i.UpdatedAt, ts), i.MetadataTokens)
	if err != nil {
		return fmt.Errorf("put instance %s: %w", i.ID, t.mapErr(err))
	}
	return nil
}

// ec2ID picks the instance's EC2 id and records it as handed out, so ids
// are never reused after a delete (nova's autoincrement instances.id).
func (t *sqlTx) ec2ID(ctx context.Context, i Instance) (int64, error) {
	id := i.EC2ID
	if id < 0 {
		return 0, fmt.Errorf("put instance %s: ec2_id %d is negative", i.ID, id)
	}
	if id == 0 {
		err := t.q.QueryRowContext(ctx, `SELECT ec2_id FROM instances WHERE id = ?`, i.ID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			// Taking the next id and recording it is one statement, so two
			// writers (on two hosts, say) never take the same one.
			err = t.q.QueryRowContext(ctx, `UPDATE counters SET last_ec2_id = last_ec2_id + 1 WHERE id = 1
				RETURNING last_ec2_id`).Scan(&id)
			if err == nil {
				return id, nil
			}
		}
		if err != nil {
			return 0, fmt.Errorf("put instance %s: ec2 id: %w", i.ID, err)
		}
	} else {
		var other string
		err := t.q.QueryRowContext(ctx, `SELECT id FROM instances WHERE ec2_id = ? AND id <> ?`, id, i.ID).Scan(&other)
		if err == nil {
			return 0, fmt.Errorf("put instance %s: ec2_id %d already used by instance %s: %w", i.ID, id, other, ErrConflict)
		} else if !errors.Is(err, sql.ErrNoRows) {
			return 0, fmt.Errorf("put instance %s: ec2 id: %w", i.ID, err)
		}
	}
	if _, err := t.q.ExecContext(ctx, `UPDATE counters SET last_ec2_id = CASE WHEN last_ec2_id < ? THEN ? ELSE last_ec2_id END
		WHERE id = 1`, id, id); err != nil {
		return 0, fmt.Errorf("put instance %s: ec2 id: %w", i.ID, err)
	}
	return id, nil
}

// DeleteInstance removes an instance with its ports and password.
func (t *sqlTx) DeleteInstance(ctx context.Context, id string) error {
	t.write()
	return t.deleteWith(ctx, "instance", id,
		`DELETE FROM fixed_ips WHERE port_id IN (SELECT id FROM ports WHERE device_id = ?)`,
		`DELETE FROM ports WHERE device_id = ?`,
		`DELETE FROM passwords WHERE instance_id = ?`,
		`DELETE FROM instances WHERE id = ?`)
}

// InstanceView reads the instance, its project (just the ID when the
// project was never recorded: metadata needs only that) and its ports with
// their networks and subnets. Call it inside one transaction.
func (t *sqlTx) InstanceView(ctx context.Context, ref string) (InstanceView, error) {
	inst, err := t.GetInstance(ctx, ref)
	if err != nil {
		return InstanceView{}, err
	}
	v := InstanceView{Instance: inst, Project: Project{ID: inst.ProjectID}}
	if inst.ProjectID != "" {
		p, err := t.GetProject(ctx, inst.ProjectID)
		switch {
		case err == nil:
			v.Project = p
		case !errors.Is(err, ErrNotFound):
			return InstanceView{}, fmt.Errorf("instance %q: %w", ref, err)
		}
	}
	ports, err := t.listPorts(ctx, `p.device_id = ?`, []any{inst.ID})
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: ports: %w", ref, err)
	}
	// The networks and subnets of all its ports, one statement each
	// rather than one per port: a round trip is what a network server
	// charges.
	nets, err := scanByID(ctx, t, `SELECT `+networkCols+` FROM networks
		WHERE id IN (SELECT network_id FROM ports WHERE device_id = ?)`,
		scanNetwork, func(n Network) string { return n.ID }, inst.ID)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: networks: %w", ref, err)
	}
	subs, err := scanByID(ctx, t, `SELECT `+subnetCols+` FROM subnets
		WHERE id IN (SELECT f.subnet_id FROM fixed_ips f JOIN ports p ON p.id = f.port_id WHERE p.device_id = ?)`,
		scanSubnet, func(s Subnet) string { return s.ID }, inst.ID)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: subnets: %w", ref, err)
	}
	for _, p := range ports {
		pv := PortView{Port: p}
		n, ok := nets[p.NetworkID]
		if !ok {
			return InstanceView{}, fmt.Errorf("instance %q: port %s: %w", ref, p.ID, notFound("network", p.NetworkID))
		}
		pv.Network = n
		for _, f := range p.FixedIPs {
			s, ok := subs[f.SubnetID]
			if !ok {
				return InstanceView{}, fmt.Errorf("instance %q: port %s: %w", ref, p.ID, notFound("subnet", f.SubnetID))
			}
			pv.Subnets = append(pv.Subnets, s)
		}
		v.Ports = append(v.Ports, pv)
	}
	return v, nil
}

// scanByID reads the records q selects, by their id.
func scanByID[T any](ctx context.Context, t *sqlTx, q string, scan func(interface{ Scan(...any) error }) (T, error),
	id func(T) string, args ...any) (map[string]T, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out[id(v)] = v
	}
	return out, rows.Err()
}

// ---- settings and passwords

func (t *sqlTx) Settings(ctx context.Context) (map[string]string, error) {
	rows, err := t.q.QueryContext(ctx, `SELECT key, value FROM settings`)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read settings: %w", err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return out, nil
}

// SetSetting stores a known setting in its canonical form, so what a
// server later parses is always valid.
// Setting a value it already has changes nothing, and no generation.
func (t *sqlTx) SetSetting(ctx context.Context, key, value string) error {
	v, err := NormalizeSetting(key, value)
	if err != nil {
		return err
	}
	res, err := t.q.ExecContext(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE settings.value <> excluded.value`, key, v)
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return t.wroteRows(res, "set "+key)
}

// wroteRows marks the transaction dirty when res changed any row.
func (t *sqlTx) wroteRows(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n > 0 {
		t.write()
	}
	return nil
}

// UnsetSetting returns a setting to its default; unsetting one that is not
// set is not an error.
func (t *sqlTx) UnsetSetting(ctx context.Context, key string) error {
	res, err := t.q.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, key)
	if err != nil {
		return fmt.Errorf("unset %s: %w", key, err)
	}
	return t.wroteRows(res, "unset "+key)
}

func (t *sqlTx) Password(ctx context.Context, instanceID string) (string, error) {
	var pw string
	err := t.queryRow(ctx, `SELECT password FROM passwords WHERE instance_id = ?`, instanceID).Scan(&pw)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("instance %s: password: %w", instanceID, err)
	}
	return pw, nil
}

// SetPassword leaves the generation alone: no server caches a password
// (the API reads it from the store on each GET), so a guest's POST must
// not flush every cache and reconcile every serve.
func (t *sqlTx) SetPassword(ctx context.Context, instanceID, password string) error {
	if ok, err := t.exists(ctx, "instances", instanceID); err != nil {
		return fmt.Errorf("instance %s: set password: %w", instanceID, err)
	} else if !ok {
		return notFound("instance", instanceID)
	}
	res, err := t.q.ExecContext(ctx, `INSERT INTO passwords (instance_id, password, created_at) VALUES (?, ?, ?)
		ON CONFLICT (instance_id) DO NOTHING`, instanceID, password, now().UnixNano())
	if err != nil {
		return fmt.Errorf("instance %s: set password: %w", instanceID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("instance %s: password already set: %w", instanceID, ErrConflict)
	}
	return nil
}

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, db querier, what, q string, scan func(*sql.Rows) (T, error), args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
