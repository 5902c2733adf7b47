"""The egress business layer: the only code that changes egress state, and what pages show of it.

- `commands`  state changes (submit, resubmit, review, release, withdraw, download), each a
              transition of `egress.workflow`'s table with its audit event in one transaction;
- `queries`   read models: one request blinded for its viewer, the lists pages and the workspace
              client show, the permit of the calling workspace;
- `data`      data access: the only code that reads or writes the egress tables.

`EgressService` (here) is the one object that handlers (web, API, benchmarks, tests) call; they
map its exceptions to HTTP codes and never write rows. Must not import the web layer.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from egress.business.commands import Commands, Submission
from egress.business.data import RequestData
from egress.business.queries import ReadModels
from egress.store import BlobStore
from hub.permits.store import PermitStore
from hub.settings import Settings

__all__ = ["EgressService", "Submission"]


class EgressService(Commands, ReadModels):
    """The egress commands and read models over one registry and one blob store."""

    def __init__(self, engine: sa.Engine, settings: Settings, *, provenance_timeout_seconds: float = 30,
                 provenance_memory_limit: str = "512MB", today: date | None = None):
        self.engine = engine
        self.settings = settings
        self.permits = PermitStore(engine)
        self.store = BlobStore(settings.store_dir)
        self.data = RequestData(engine, self.store, self.permits)
        self.provenance_timeout_seconds = provenance_timeout_seconds
        self.provenance_memory_limit = provenance_memory_limit
        self.today = today  # the date permits are judged on (None: the day of each call)
