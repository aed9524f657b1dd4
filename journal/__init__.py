"""The LMDB-backed journal: events, indexes, group commit, export/import, verify."""
