-- SQLite's 0004_network_attach.sql for PostgreSQL. Networks on an
-- operator's own L2 (issue 16), additive only: a network may
-- name an existing host bridge (or trunk, with a VLAN), and a port may be
-- bound to a VM outside mdctl's lab (neutron's binding:host_id), which the
-- lab and the reconciler then leave alone. Numbered 0003 so that a 0002 of
-- another change can land before or after it without renumbering.
ALTER TABLE networks ADD COLUMN bridge TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN vlan INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ports ADD COLUMN binding_host_id TEXT NOT NULL DEFAULT '';
