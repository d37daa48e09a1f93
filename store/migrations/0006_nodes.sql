-- Nodes, scheduling and failover (issue 15): the serves that registered
-- (neutron's agents table), which node hosts each router (neutron's
-- routerl3agentbindings: one per router, the primary key) and each DHCP
-- network (networkdhcpagentbindings: one row per hosting node), and a
-- router's pin (router set --node; '' is the scheduler's choice).
-- Additive only. Times are ns since the epoch; components a JSON array.
ALTER TABLE routers ADD COLUMN node TEXT NOT NULL DEFAULT '';

CREATE TABLE nodes (
	name         TEXT PRIMARY KEY,
	components   TEXT NOT NULL,
	admin_url    TEXT NOT NULL,
	admin_socket TEXT NOT NULL,
	version      TEXT NOT NULL,
	started_at   INTEGER NOT NULL,
	heartbeat_at INTEGER NOT NULL
);

CREATE TABLE router_bindings (
	router_id TEXT PRIMARY KEY REFERENCES routers (id) ON DELETE CASCADE,
	node      TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	bound_at  INTEGER NOT NULL
);
CREATE INDEX router_bindings_node ON router_bindings (node);

CREATE TABLE network_bindings (
	network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
	node       TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	bound_at   INTEGER NOT NULL,
	PRIMARY KEY (network_id, node)
);
CREATE INDEX network_bindings_node ON network_bindings (node);
