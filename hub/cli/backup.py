"""`spe backup create DIR` / `spe backup restore DIR`: one SPE home into a directory and back.

`create` writes the registry (SQLite online backup or pg_dump), the files and, apart in
`DIR/sealed-keys/`, the key store, with `DIR/manifest.json` (size and SHA-256 of every file);
it can run while the services run. `restore` into an empty SPE_HOME (and, for PostgreSQL, an
empty database at SPE_DB_URL) checks every hash first and refuses, naming the first bad
entry, before writing anything; it then verifies the restored audit trail. hub.backup does
the work. Must not import `egress`.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("backup", help="back up this SPE home into a directory, or restore one")
    s = p.add_subparsers(dest="backup_command", required=True)
    create = s.add_parser("create", help="write a backup (registry, audit trail, extracts, stores, config, keys apart)")
    create.add_argument("dir", help="a new or empty directory outside SPE_HOME")
    create.set_defaults(func=cmd_create)
    restore = s.add_parser("restore", help="restore a backup into this (empty) SPE home, then verify the audit trail")
    restore.add_argument("dir", help="a directory written by `spe backup create`")
    restore.add_argument("--manifest-sha256", help="the manifest's SHA-256 printed by `spe backup create` "
                         "(recommended: also refuses a backup whose manifest was rewritten)")
    restore.set_defaults(func=cmd_restore)


def cmd_create(args, settings) -> int:
    from hub.backup.archive import create

    manifest = create(settings, Path(args.dir))
    total = sum(f["bytes"] for f in manifest["files"])
    print(f"backup written to {args.dir}: {len(manifest['files'])} file(s), {total} bytes "
          f"(registry: {manifest['registry']}; keys in {Path(args.dir) / 'sealed-keys'})")
    print(f"manifest SHA-256: {manifest['manifest_sha256']}  (record it elsewhere; "
          "`spe backup restore --manifest-sha256` checks it)")
    return 0


def cmd_restore(args, settings) -> int:
    from hub.backup.archive import restore

    result = restore(Path(args.dir), settings, manifest_sha256=args.manifest_sha256)
    print(f"restored into {settings.home}: audit trail verifies ({result['events']} events)")
    return 0
