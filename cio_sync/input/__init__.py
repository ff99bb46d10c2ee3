"""Records in: the configuration and its schema, data files (JSON, NDJSON, CSV), casts and
mappings, from a file's bytes to each record's person update. Knows nothing of sending."""
