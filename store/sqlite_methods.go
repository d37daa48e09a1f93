package store

import "context"

// The Store's own Reader and Writer methods: each write is an Update of
// its own; reads of one statement go straight to the reader pool, reads of
// several run in one read transaction.

func (s *SQLite) GetProject(ctx context.Context, ref string) (Project, error) {
	return view(ctx, s, func(t *sqlTx) (Project, error) { return t.GetProject(ctx, ref) })
}

func (s *SQLite) ListProjects(ctx context.Context) ([]Project, error) {
	return s.direct().ListProjects(ctx)
}

func (s *SQLite) GetNetwork(ctx context.Context, ref string) (Network, error) {
	return view(ctx, s, func(t *sqlTx) (Network, error) { return t.GetNetwork(ctx, ref) })
}

func (s *SQLite) ListNetworks(ctx context.Context) ([]Network, error) {
	return s.direct().ListNetworks(ctx)
}

func (s *SQLite) GetSubnet(ctx context.Context, id string) (Subnet, error) {
	return s.direct().GetSubnet(ctx, id)
}

func (s *SQLite) ListSubnets(ctx context.Context, networkID string) ([]Subnet, error) {
	return s.direct().ListSubnets(ctx, networkID)
}

func (s *SQLite) GetRouter(ctx context.Context, ref string) (Router, error) {
	return view(ctx, s, func(t *sqlTx) (Router, error) { return t.GetRouter(ctx, ref) })
}

func (s *SQLite) ListRouters(ctx context.Context) ([]Router, error) {
	return s.direct().ListRouters(ctx)
}

func (s *SQLite) GetPort(ctx context.Context, id string) (Port, error) {
	return s.direct().GetPort(ctx, id)
}

// ListPorts is the agent's hot path: one statement, no transaction.
func (s *SQLite) ListPorts(ctx context.Context, f PortFilter) ([]Port, error) {
	return s.direct().ListPorts(ctx, f)
}

func (s *SQLite) GetInstance(ctx context.Context, ref string) (Instance, error) {
	return view(ctx, s, func(t *sqlTx) (Instance, error) { return t.GetInstance(ctx, ref) })
}

func (s *SQLite) ListInstances(ctx context.Context) ([]Instance, error) {
	return s.direct().ListInstances(ctx)
}

func (s *SQLite) InstanceView(ctx context.Context, ref string) (InstanceView, error) {
	return view(ctx, s, func(t *sqlTx) (InstanceView, error) { return t.InstanceView(ctx, ref) })
}

func (s *SQLite) Settings(ctx context.Context) (map[string]string, error) {
	return s.direct().Settings(ctx)
}

func (s *SQLite) Password(ctx context.Context, instanceID string) (string, error) {
	return s.direct().Password(ctx, instanceID)
}

func (s *SQLite) write(ctx context.Context, fn func(t Tx) error) error {
	return s.Update(ctx, fn)
}

func (s *SQLite) PutProject(ctx context.Context, p Project) error {
	return s.write(ctx, func(t Tx) error { return t.PutProject(ctx, p) })
}

func (s *SQLite) PutNetwork(ctx context.Context, n Network) error {
	return s.write(ctx, func(t Tx) error { return t.PutNetwork(ctx, n) })
}

func (s *SQLite) DeleteNetwork(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteNetwork(ctx, id) })
}

func (s *SQLite) PutSubnet(ctx context.Context, sn Subnet) error {
	return s.write(ctx, func(t Tx) error { return t.PutSubnet(ctx, sn) })
}

func (s *SQLite) DeleteSubnet(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteSubnet(ctx, id) })
}

func (s *SQLite) PutRouter(ctx context.Context, r Router) error {
	return s.write(ctx, func(t Tx) error { return t.PutRouter(ctx, r) })
}

func (s *SQLite) DeleteRouter(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteRouter(ctx, id) })
}

func (s *SQLite) PutPort(ctx context.Context, p Port) error {
	return s.write(ctx, func(t Tx) error { return t.PutPort(ctx, p) })
}

func (s *SQLite) DeletePort(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeletePort(ctx, id) })
}

func (s *SQLite) PutInstance(ctx context.Context, i Instance) error {
	return s.write(ctx, func(t Tx) error { return t.PutInstance(ctx, i) })
}

func (s *SQLite) DeleteInstance(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteInstance(ctx, id) })
}

func (s *SQLite) SetSetting(ctx context.Context, key, value string) error {
	return s.write(ctx, func(t Tx) error { return t.SetSetting(ctx, key, value) })
}

func (s *SQLite) UnsetSetting(ctx context.Context, key string) error {
	return s.write(ctx, func(t Tx) error { return t.UnsetSetting(ctx, key) })
}

func (s *SQLite) SetPassword(ctx context.Context, instanceID, password string) error {
	return s.write(ctx, func(t Tx) error { return t.SetPassword(ctx, instanceID, password) })
}
