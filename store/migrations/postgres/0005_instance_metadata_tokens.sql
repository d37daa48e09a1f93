-- SQLite's 0005_instance_metadata_tokens.sql for PostgreSQL: session
-- tokens per instance (issue 14): '' follows the metadata_tokens setting,
-- 'optional' or 'required' overrides it. Additive only.
ALTER TABLE instances ADD COLUMN metadata_tokens TEXT NOT NULL DEFAULT '';
