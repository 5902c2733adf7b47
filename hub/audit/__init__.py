"""Audit trail: append-only, SHA-256 hash-chained events (EHDS Art. 73(1)(e)).

`record(conn, ...)` appends one event inside the caller's transaction, so a state change and
its audit record commit or fail together. `verify(engine)` walks the chain and names the
first damaged record and the kind of damage; signed checkpoints (`hub.audit.checkpoint`)
catch a rewrite of the whole chain and carry it over retention purges.

Modules, one job each: `store` appends and reads, `verification` verifies, `checkpoint` signs,
`retention` purges, `pack` exports evidence; `chain` and `events` are the pure rules beneath.
"""

from hub.audit.store import iter_events, record, record_many  # noqa: F401
from hub.audit.verification import VerifyResult, verify  # noqa: F401
