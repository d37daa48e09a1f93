-- SQLite's 0003_port_security_groups.sql for PostgreSQL.
-- The security groups bound to each port, by name, in binding order (a JSON
-- array): nova's EC2 security-groups lists one line per binding of each of
-- the instance's ports. Compute ports made before this column were in
-- neutron's "default" group; router and DHCP ports are in none.
-- Additive and self-contained, so it can be renumbered at a merge.
ALTER TABLE ports ADD COLUMN security_groups TEXT NOT NULL DEFAULT '[]';
UPDATE ports SET security_groups = '["default"]' WHERE device_owner LIKE 'compute:%';
