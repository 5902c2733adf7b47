"""egress's parts in hub's shared machinery, registered through `hub.extensions` (hub never
imports egress): its tables (`egress.tables.metadata`: requests, reviews, releases, the DP
ledger and import requests), its metric groups (`egress`, `dp`: `egress.metrics`) and the released outputs of the
public register (`released_outputs`), the files `spe backup` must hold (`backup_paths`: the
content-addressed store of submissions and the approved imports), and the retention of its
request files (`egress.retention`).

`install()` is idempotent. It runs where egress starts (`egress.app.make_app`,
`python -m egress.dp`) and, through the `spe.extensions` entry point in pyproject.toml, in every
`spe` command, so that one `spe` call creates every table. Must not import the web layer.
"""

from __future__ import annotations

import sqlalchemy as sa

from hub import extensions
from hub.register import ReleasedOutput


def released_outputs(engine: sa.Engine) -> list[ReleasedOutput]:
    """Every released output, with the description of the released version; no author or releaser."""
    from egress.tables import egress_releases as rel, egress_request_versions as ver

    q = (sa.select(rel.c.request_id, rel.c.permit_id, rel.c.released_at, ver.c.kind, ver.c.description)
         .join(ver, sa.and_(ver.c.request_id == rel.c.request_id, ver.c.version == rel.c.version)))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [ReleasedOutput(permit_id=r.permit_id, output_id=r.request_id, description=r.description or "",
                           released_at=r.released_at, kind=r.kind) for r in rows]


def backup_paths(settings):
    """What egress writes under SPE_HOME besides its tables: the store of submitted and released
    files (content-addressed) and the approved imports (mounted read-only in workspaces)."""
    return (settings.store_dir, settings.imports_dir)


def install() -> None:
    from egress.dp import ledger  # noqa: F401  (defines the DP ledger's tables on egress's metadata)
    from egress.imports import tables as _imports  # noqa: F401  (import requests, on egress's metadata)
    from egress.metrics import METRIC_GROUPS
    from egress.retention import run_retention  # also defines egress_retention on egress's metadata
    from egress.tables import metadata

    extensions.register(extensions.Extension(name="egress", metadata=(metadata,), metric_groups=METRIC_GROUPS,
                                             released_outputs=released_outputs, backup_paths=backup_paths,
                                             retention=run_retention))
