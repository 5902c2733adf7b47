"""The hook through which a package built on hub (egress) plugs its own parts into hub's shared
machinery, so that hub never imports it.

    egress ──imports──► hub            (registry, permits, audit, this hook)
    hub ──never imports──► egress      (checked by the import contract in pyproject.toml)
    egress.extension.install() ──register(Extension)──► hub.extensions ◄── hub.db, hub.metrics, hub.register

An `Extension` names what it adds:
- `metadata`: its SQLAlchemy `MetaData`; `hub.db.make_engine` creates those tables beside hub's own
  (also for an engine made before the extension registered);
- `metric_groups`: metric groups by name (`hub.metrics.MetricGroup` factories) that `SpeCollector`
  serves beside hub's `workspace`, `provisioning`, `permits` and `audit`;
- `released_outputs`: a provider of the released outputs listed in the public register
  (`hub.register.ReleasedOutput`; only its public fields ever reach the register);
- `backup_paths`: the files and directories under SPE_HOME that it writes and `spe backup`
  must hold (hub.backup; its tables are in the registry, which is backed up anyway).
- `retention`: deletes the extension's data past each permit's retention (`spe retention run`).

Who registers: the extension itself, where it starts (the egress service, `python -m egress.dp`),
and every `spe` command through the `spe.extensions` entry point of the installed distribution
(`load_installed()`), so that one `spe` call creates every table. Registering is idempotent (by name).
Must not import anything outside the standard library: every hub module may import this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

if TYPE_CHECKING:  # types only: hub.metrics and hub.register import this module
    import sqlalchemy as sa

    from hub.metrics import MetricGroup
    from hub.register import ReleasedOutput
    from hub.settings import Settings

ENTRY_POINT_GROUP = "spe.extensions"


@dataclass(frozen=True)
class Extension:
    name: str
    metadata: tuple["sa.MetaData", ...] = ()
    metric_groups: Mapping[str, Callable[[], "MetricGroup"]] = field(default_factory=dict)
    released_outputs: Callable[["sa.Engine"], Iterable["ReleasedOutput"]] | None = None
    backup_paths: Callable[["Settings"], Iterable["Path"]] | None = None
    # retention (`spe retention run`): (engine, settings, now, dry_run, actor) -> one dict per deletion
    retention: Callable[..., list[dict]] | None = None


_registered: dict[str, Extension] = {}


def register(extension: Extension) -> None:
    """Add (or replace, by name) an extension. A metric group name already served by another
    extension is refused: two groups under one name would silently shadow each other."""
    for other in _registered.values():
        clash = set(other.metric_groups) & set(extension.metric_groups)
        if other.name != extension.name and clash:
            raise ValueError(f"extension {extension.name!r}: metric group(s) {sorted(clash)} "
                             f"already registered by {other.name!r}")
    _registered[extension.name] = extension


def installed() -> tuple[Extension, ...]:
    """The registered extensions, in registration order."""
    return tuple(_registered.values())


def load_installed() -> tuple[str, ...]:
    """Call every `spe.extensions` entry point of the installed distributions (each calls
    `register`); returns their names. An entry point that fails to load raises: a broken
    extension is a broken installation, not something to skip silently."""
    from importlib.metadata import entry_points

    names = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        ep.load()()
        names.append(ep.name)
    return tuple(names)
