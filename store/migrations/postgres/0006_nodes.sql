-- SQLite's 0006_nodes.sql for PostgreSQL (issue 15): registered nodes,
-- router and DHCP network bindings (neutron's routerl3agentbindings and
-- networkdhcpagentbindings), a router's pin. The router binding's primary
-- key is what keeps schedulers on several hosts from binding a router
-- twice. Additive only.
ALTER TABLE routers ADD COLUMN node TEXT NOT NULL DEFAULT '';

CREATE TABLE nodes (
	name         TEXT PRIMARY KEY,
	components   TEXT NOT NULL, -- JSON array
	admin_url    TEXT NOT NULL,
	admin_socket TEXT NOT NULL,
	version      TEXT NOT NULL,
	started_at   BIGINT NOT NULL,
	heartbeat_at BIGINT NOT NULL
);

CREATE TABLE router_bindings (
	router_id TEXT PRIMARY KEY REFERENCES routers (id) ON DELETE CASCADE,
	node      TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	bound_at  BIGINT NOT NULL
);
CREATE INDEX router_bindings_node ON router_bindings (node);

CREATE TABLE network_bindings (
	network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
	node       TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
	bound_at   BIGINT NOT NULL,
	PRIMARY KEY (network_id, node)
);
CREATE INDEX network_bindings_node ON network_bindings (node);
