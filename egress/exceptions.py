"""Errors of the egress package, flat (STYLE: one exceptions module per package).

Each class subclasses the matching `hub.exceptions` class, so the web layer and the CLI map
them to HTTP 4xx / exit codes without knowing this package. A *refusal* says what the user
must change (a bad file, a disclosive table, a query outside the supported form); a
*failure* is the system breaking (the extract is missing, DuckDB crashed).

Must not import anything from `egress` (every egress module imports this one).
"""

from hub.exceptions import Failure, InvalidInput, Refused


class FileRefused(InvalidInput):
    """An output file breaks the file policy (type, size, name, content); `field` names the file."""


class ProvenanceRefused(Refused):
    """The provenance SQL is not allowed: not one SELECT, reads or writes outside the extract."""


class ProvenanceLimit(Refused):
    """Re-executing the provenance SQL broke its time, memory or result-size limit."""

    http_status = 422


class TableMismatch(Refused):
    """The submitted table differs from the result of its provenance SQL (tampered or stale)."""

    http_status = 422


class ExtractUnavailable(Failure):
    """The permit's extract directory or one of its Parquet files cannot be opened."""
