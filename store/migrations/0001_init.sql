-- One row of counters: the generation every committed write bumps, and the
-- last EC2 id handed out (ids are never reused, like nova's instances.id).
CREATE TABLE counters (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	generation  INTEGER NOT NULL,
	last_ec2_id INTEGER NOT NULL
);
INSERT INTO counters (id, generation, last_ec2_id) VALUES (1, 0, 0);

-- Names are unique per kind when set; empty names are allowed many times.
CREATE TABLE projects (
	id   TEXT PRIMARY KEY,
	name TEXT NOT NULL
);
CREATE UNIQUE INDEX projects_name ON projects (name) WHERE name <> '';

CREATE TABLE networks (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	project_id TEXT NOT NULL,
	mtu        INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX networks_name ON networks (name) WHERE name <> '';

CREATE TABLE subnets (
	id                TEXT PRIMARY KEY,
	network_id        TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
	name              TEXT NOT NULL,
	ip_version        INTEGER NOT NULL,
	cidr              TEXT NOT NULL,
	gateway_ip        TEXT NOT NULL,
	enable_dhcp       INTEGER NOT NULL,
	ipv6_address_mode TEXT NOT NULL,
	dns_nameservers   TEXT NOT NULL, -- JSON array
	host_routes       TEXT NOT NULL  -- JSON array
);
CREATE INDEX subnets_network ON subnets (network_id);

CREATE TABLE routers (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	project_id TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX routers_name ON routers (name) WHERE name <> '';

CREATE TABLE ports (
	id           TEXT PRIMARY KEY,
	network_id   TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
	project_id   TEXT NOT NULL,
	mac_address  TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	device_owner TEXT NOT NULL,
	created_at   INTEGER NOT NULL
);
CREATE INDEX ports_network ON ports (network_id);
CREATE INDEX ports_device ON ports (device_id);
-- neutron: a MAC address is used once per network.
CREATE UNIQUE INDEX ports_mac ON ports (network_id, mac_address) WHERE mac_address <> '';
CREATE INDEX ports_mac_any ON ports (mac_address);

-- A port's addresses, in order (pos). network_id repeats the port's network
-- so that one address is used once per network.
CREATE TABLE fixed_ips (
	port_id    TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
	pos        INTEGER NOT NULL,
	network_id TEXT NOT NULL,
	subnet_id  TEXT NOT NULL REFERENCES subnets (id),
	ip_address TEXT NOT NULL,
	PRIMARY KEY (port_id, pos),
	UNIQUE (network_id, ip_address)
);
CREATE INDEX fixed_ips_ip ON fixed_ips (ip_address);
CREATE INDEX fixed_ips_subnet ON fixed_ips (subnet_id);

CREATE TABLE instances (
	id                TEXT PRIMARY KEY,
	ec2_id            INTEGER NOT NULL UNIQUE,
	name              TEXT NOT NULL,
	hostname          TEXT NOT NULL,
	project_id        TEXT NOT NULL,
	availability_zone TEXT NOT NULL,
	flavor            TEXT NOT NULL,
	launch_index      INTEGER NOT NULL,
	meta              TEXT NOT NULL, -- JSON object
	keys              TEXT NOT NULL, -- JSON array, in order
	user_data         BLOB,
	config_drive      INTEGER NOT NULL,
	admin_pass        TEXT NOT NULL,
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL
);
CREATE UNIQUE INDEX instances_name ON instances (name) WHERE name <> '';

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE passwords (
	instance_id TEXT PRIMARY KEY REFERENCES instances (id) ON DELETE CASCADE,
	password    TEXT NOT NULL,
	created_at  INTEGER NOT NULL
);
