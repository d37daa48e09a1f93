-- Session tokens per instance (issue 14, AWS's HttpTokens per instance):
-- '' follows the metadata_tokens setting, 'optional' or 'required'
-- overrides it. Additive only.
ALTER TABLE instances ADD COLUMN metadata_tokens TEXT NOT NULL DEFAULT '';
