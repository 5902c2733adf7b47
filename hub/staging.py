"""Publishing files into directories that someone else serves: the package mirror's indexes and
the `/imports` directories that workspaces mount read-only.

The order makes a crash fail closed. Adding: the bytes are written (and fsynced) under a staging
directory on the same filesystem, the caller records the addition (registry row + audit event,
one transaction), and only after the commit `Staged.place` renames the file into the served
directory, atomically: a crash leaves a record without a file (listed as missing), never a
served file without a record. Removing: `unpublish` deletes the file before the caller commits
the removal, so a crash leaves a record of a file that is no longer served.

Served files are read-only for everyone (0444) in directories that everyone may traverse
(0755): workspaces read them as uid 1000, the mirror as its own user. Names never come from
users unchecked: callers pass names their own rules accepted. Standard library plus
`hub.exceptions`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from hub.exceptions import Conflict

FILE_MODE = 0o444
DIR_MODE = 0o755


def ensure_dir(path: Path) -> Path:
    """`path` and its missing parents, traversable by everyone (0755, whatever the umask)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for p in reversed(missing):
        os.chmod(p, DIR_MODE)
    return path


class Staged:
    """Bytes written under `staging_dir`, waiting to be placed. Use as a context manager: the
    staged copy is removed on exit unless it was placed."""

    def __init__(self, staging_dir: Path, data: bytes):
        ensure_dir(staging_dir)
        fd, tmp = tempfile.mkstemp(dir=staging_dir, prefix=".staged-")
        self.path: Path | None = Path(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, FILE_MODE)
        except BaseException:
            self.discard()
            raise
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.size_bytes = len(data)

    def place(self, target: Path, *, replace: bool = False) -> Path:
        """Rename into `target` (atomic, same filesystem). An existing file with other bytes is a
        Conflict unless `replace`; the same bytes are already published."""
        if self.path is None:
            raise RuntimeError("nothing staged")
        ensure_dir(target.parent)
        if target.exists() and not replace:
            if hashlib.sha256(target.read_bytes()).hexdigest() != self.sha256:
                raise Conflict(f"{target.name} is already published with other content")
            self.discard()
            return target
        os.replace(self.path, target)
        self.path = None
        fsync_dir(target.parent)
        return target

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def __enter__(self) -> "Staged":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()


def unpublish(path: Path) -> bool:
    """Remove a published file (before its removal is committed); True if it was there."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def fsync_dir(path: Path) -> None:
    """Make a rename or an unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
