"""Audit trail: append-only, SHA-256 hash-chained events (EHDS Art. 73(1)(e)).

`record(conn, ...)` appends one event inside the caller's transaction, so a state change and
its audit record commit or fail together. `verify(engine)` walks the chain and names the
first damaged record and the kind of damage; signed checkpoints (`hub.audit.checkpoint`)
catch a rewrite of the whole chain and carry it over retention purges.
"""

from hub.audit.store import record, record_many, verify, iter_events, VerifyResult  # noqa: F401
