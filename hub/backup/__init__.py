"""Backup and restore of one SPE home (`spe backup create|restore`).

`manifest` is the pure part (what a backup holds, how it is checked); `archive` does the I/O.
What is backed up: the registry (SQLite online backup API, or `pg_dump` for PostgreSQL) with
the audit trail, its checkpoints, permits, extracts' metadata and every extension's tables
(egress: requests, reviews, DP ledger); the extracts; the package mirror; the hub's own state
(its SQLite database, cookie secret, demo users, service tokens); the site's `hdab.yaml` and
`fees.yaml`; the files an extension names (`hub.extensions.Extension.backup_paths`: egress's
content-addressed store and the approved imports); and, apart, the key store (`sealed-keys/`).
Must not import `egress`.
"""
