package store

import "context"

// The Store's own Reader and Writer methods: each write is an Update of
// its own; reads of one statement go straight to the reader pool, reads of
// several run in one read transaction.

func (s *sqlStore) GetProject(ctx context.Context, ref string) (Project, error) {
	return view(ctx, s, func(t *sqlTx) (Project, error) { return t.GetProject(ctx, ref) })
}

func (s *sqlStore) ListProjects(ctx context.Context) ([]Project, error) {
	return s.direct().ListProjects(ctx)
}

func (s *sqlStore) GetNetwork(ctx context.Context, ref string) (Network, error) {
	return view(ctx, s, func(t *sqlTx) (Network, error) { return t.GetNetwork(ctx, ref) })
}

func (s *sqlStore) ListNetworks(ctx context.Context) ([]Network, error) {
	return s.direct().ListNetworks(ctx)
}

func (s *sqlStore) GetSubnet(ctx context.Context, id string) (Subnet, error) {
	return s.direct().GetSubnet(ctx, id)
}

func (s *sqlStore) ListSubnets(ctx context.Context, networkID string) ([]Subnet, error) {
	return s.direct().ListSubnets(ctx, networkID)
}

func (s *sqlStore) GetRouter(ctx context.Context, ref string) (Router, error) {
	return view(ctx, s, func(t *sqlTx) (Router, error) { return t.GetRouter(ctx, ref) })
}

func (s *sqlStore) ListRouters(ctx context.Context) ([]Router, error) {
	return s.direct().ListRouters(ctx)
}

func (s *sqlStore) GetPort(ctx context.Context, id string) (Port, error) {
	return s.direct().GetPort(ctx, id)
}

// ListPorts is the agent's hot path: one statement, no transaction.
// It, InstanceView, Settings, Password and SetPassword are the calls a
// guest's request makes: bounded.
func (s *sqlStore) ListPorts(ctx context.Context, f PortFilter) ([]Port, error) {
	return bounded(ctx, s, func(ctx context.Context) ([]Port, error) { return s.direct().ListPorts(ctx, f) })
}

func (s *sqlStore) GetInstance(ctx context.Context, ref string) (Instance, error) {
	return view(ctx, s, func(t *sqlTx) (Instance, error) { return t.GetInstance(ctx, ref) })
}

func (s *sqlStore) ListInstances(ctx context.Context) ([]Instance, error) {
	return s.direct().ListInstances(ctx)
}

func (s *sqlStore) InstanceView(ctx context.Context, ref string) (InstanceView, error) {
	return bounded(ctx, s, func(ctx context.Context) (InstanceView, error) {
		return view(ctx, s, func(t *sqlTx) (InstanceView, error) { return t.InstanceView(ctx, ref) })
	})
}

func (s *sqlStore) Settings(ctx context.Context) (map[string]string, error) {
	return bounded(ctx, s, func(ctx context.Context) (map[string]string, error) { return s.direct().Settings(ctx) })
}

func (s *sqlStore) Password(ctx context.Context, instanceID string) (string, error) {
	return bounded(ctx, s, func(ctx context.Context) (string, error) { return s.direct().Password(ctx, instanceID) })
}

func (s *sqlStore) write(ctx context.Context, fn func(t Tx) error) error {
	return s.Update(ctx, fn)
}

func (s *sqlStore) PutProject(ctx context.Context, p Project) error {
	return s.write(ctx, func(t Tx) error { return t.PutProject(ctx, p) })
}

func (s *sqlStore) PutNetwork(ctx context.Context, n Network) error {
	return s.write(ctx, func(t Tx) error { return t.PutNetwork(ctx, n) })
}

func (s *sqlStore) DeleteNetwork(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteNetwork(ctx, id) })
}

func (s *sqlStore) PutSubnet(ctx context.Context, sn Subnet) error {
	return s.write(ctx, func(t Tx) error { return t.PutSubnet(ctx, sn) })
}

func (s *sqlStore) DeleteSubnet(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteSubnet(ctx, id) })
}

func (s *sqlStore) PutRouter(ctx context.Context, r Router) error {
	return s.write(ctx, func(t Tx) error { return t.PutRouter(ctx, r) })
}

func (s *sqlStore) DeleteRouter(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteRouter(ctx, id) })
}

func (s *sqlStore) PutPort(ctx context.Context, p Port) error {
	return s.write(ctx, func(t Tx) error { return t.PutPort(ctx, p) })
}

func (s *sqlStore) DeletePort(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeletePort(ctx, id) })
}

func (s *sqlStore) PutInstance(ctx context.Context, i Instance) error {
	return s.write(ctx, func(t Tx) error { return t.PutInstance(ctx, i) })
}

func (s *sqlStore) DeleteInstance(ctx context.Context, id string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteInstance(ctx, id) })
}

func (s *sqlStore) SetSetting(ctx context.Context, key, value string) error {
	return s.write(ctx, func(t Tx) error { return t.SetSetting(ctx, key, value) })
}

func (s *sqlStore) UnsetSetting(ctx context.Context, key string) error {
	return s.write(ctx, func(t Tx) error { return t.UnsetSetting(ctx, key) })
}

func (s *sqlStore) SetPassword(ctx context.Context, instanceID, password string) error {
	_, err := bounded(ctx, s, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.write(ctx, func(t Tx) error { return t.SetPassword(ctx, instanceID, password) })
	})
	return err
}

func (s *sqlStore) ListNodes(ctx context.Context) ([]Node, error) {
	return s.direct().ListNodes(ctx)
}

func (s *sqlStore) GetNode(ctx context.Context, name string) (Node, error) {
	return s.direct().GetNode(ctx, name)
}

func (s *sqlStore) RouterHosts(ctx context.Context, routerID string) ([]string, error) {
	return s.direct().RouterHosts(ctx, routerID)
}

func (s *sqlStore) NetworkHosts(ctx context.Context, networkID string) ([]string, error) {
	return s.direct().NetworkHosts(ctx, networkID)
}

func (s *sqlStore) RouterBindings(ctx context.Context) ([]Binding, error) {
	return s.direct().RouterBindings(ctx)
}

func (s *sqlStore) NetworkBindings(ctx context.Context) ([]Binding, error) {
	return s.direct().NetworkBindings(ctx)
}

// unlocked writes one statement outside Update: no writer lock, no
// generation. Only for a node's own row, which nothing served reads.
func (s *sqlStore) unlocked() *sqlTx { return s.tx(s.pools().wdb) }

func (s *sqlStore) RegisterNode(ctx context.Context, n Node) error {
	return s.unlocked().RegisterNode(ctx, n)
}

func (s *sqlStore) Heartbeat(ctx context.Context, name string) error {
	return s.unlocked().Heartbeat(ctx, name)
}

func (s *sqlStore) DeleteNode(ctx context.Context, name string) error {
	return s.write(ctx, func(t Tx) error { return t.DeleteNode(ctx, name) })
}

func (s *sqlStore) SetRouterHosts(ctx context.Context, routerID string, nodes []string) error {
	return s.write(ctx, func(t Tx) error { return t.SetRouterHosts(ctx, routerID, nodes) })
}

func (s *sqlStore) SetNetworkHosts(ctx context.Context, networkID string, nodes []string) error {
	return s.write(ctx, func(t Tx) error { return t.SetNetworkHosts(ctx, networkID, nodes) })
}
