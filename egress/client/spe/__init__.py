"""SPE workspace client, importable as `spe` inside a researcher's workspace.

    import spe
    req = spe.submit(df, description="Counts by sex and birth year",
                     provenance_sql="SELECT gender_concept_id, year_of_birth, count(*) AS n "
                                    "FROM person GROUP BY 1, 2", kind="frequency")
    spe.requests()            # your requests and their state
    spe.request(req["id"])    # one request: automated check results per cell, reviews when complete
    spe.resubmit(req["id"], df_suppressed, description="cells < 10 suppressed", provenance_sql=...)

Outputs are uploaded to the egress service (`SPE_EGRESS_URL`) with the workspace's server
token (`JUPYTERHUB_API_TOKEN`); nothing leaves the workspace any other way. pandas
DataFrames and Arrow tables are sent as Parquet (types and suppressed cells survive), files
as they are. A refusal raises `spe.errors.Refused` (or a subclass) with the service's reason.

Must not import `hub` or `egress` (only this package is installed in the workspace image).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from spe.errors import (Conflict, Forbidden, NotConfigured, Refused, ServiceUnavailable, SpeClientError,
                        TooLarge, from_response)

__version__ = "0.1.0"
__all__ = ["dp", "submit", "resubmit", "requests", "request", "withdraw", "apply_suggested_suppression",
           "report_finding", "finding", "Refused", "Forbidden", "Conflict",
           "TooLarge", "NotConfigured", "ServiceUnavailable", "SpeClientError"]

KINDS = ("frequency", "magnitude", "model", "figure", "text")
TIMEOUT_SECONDS = 120


def _config(url: str | None, token: str | None) -> tuple[str, str]:
    url = url or os.environ.get("SPE_EGRESS_URL", "")
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not url or not token:
        raise NotConfigured("SPE_EGRESS_URL and JUPYTERHUB_API_TOKEN must be set: run this inside an SPE workspace")
    return (url if url.endswith("/") else url + "/"), token


def _call(method: str, path: str, *, url: str | None = None, token: str | None = None, **kwargs) -> dict:
    import requests as http

    base, tok = _config(url, token)
    try:
        response = http.request(method, base + path, headers={"Authorization": f"token {tok}"},
                                timeout=TIMEOUT_SECONDS, **kwargs)
    except http.RequestException as err:
        raise ServiceUnavailable(f"the egress service at {base} cannot be reached: {err}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 500:
        raise ServiceUnavailable(f"the egress service failed ({response.status_code}); nothing was changed")
    if response.status_code >= 400:
        raise from_response(response.status_code, body if isinstance(body, dict) else None,
                            response.reason or "refused")
    return body if isinstance(body, dict) else {}


def _to_files(obj_or_paths: Any, name: str | None) -> list[tuple[str, bytes]]:
    items = list(obj_or_paths) if isinstance(obj_or_paths, (list, tuple)) else [obj_or_paths]
    if not items:
        raise ValueError("nothing to submit")
    files = []
    for i, item in enumerate(items):
        default = name if (name and len(items) == 1) else f"output-{i + 1}.parquet" if len(items) > 1 else "output.parquet"
        files.append(_one_file(item, default))
    return files


def _one_file(item: Any, default_name: str) -> tuple[str, bytes]:
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
        return path.name, path.read_bytes()
    table = _as_arrow(item)
    if table is None:
        raise TypeError(f"cannot submit a {type(item).__name__}: pass a pandas DataFrame, a pyarrow Table or a file path")
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    name = default_name if default_name.endswith(".parquet") else default_name + ".parquet"
    return name, buffer.getvalue()


def _as_arrow(item: Any):
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - the workspace image has pyarrow
        return None
    if isinstance(item, pa.Table):
        return item
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        return None
    if isinstance(item, pd.Series):
        item = item.to_frame()
    if isinstance(item, pd.DataFrame):
        frame = item
        # A groupby/crosstab result carries its labels in the index: make them columns.
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
            frame = frame.reset_index()
        frame.columns = [str(c) for c in frame.columns]
        return pa.Table.from_pandas(frame, preserve_index=False)
    return None


def _upload(path: str, obj_or_paths, description: str, provenance_sql, kind: str, name: str | None,
            url: str | None, token: str | None) -> dict:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if not description or not description.strip():
        raise ValueError("describe the output: what it shows and how it was made")
    files = _to_files(obj_or_paths, name)
    data: dict = {"description": description, "kind": kind}
    if isinstance(provenance_sql, dict):
        data["provenance"] = json.dumps(provenance_sql)
    elif provenance_sql:
        data["provenance_sql"] = provenance_sql
    multipart = [("file", (n, content, "application/octet-stream")) for n, content in files]
    return _call("POST", path, url=url, token=token, data=data, files=multipart)


def submit(obj_or_paths, description: str, provenance_sql: str | dict | None = None, kind: str = "frequency", *,
           name: str | None = None, url: str | None = None, token: str | None = None) -> dict:
    """Submit outputs for review; returns the request with the automated check results.

    obj_or_paths: a DataFrame, an Arrow table, a file path, or a list of them.
    provenance_sql: the SQL that made the table (re-executed on the extract to verify it and
        count persons per cell); a dict {file name: SQL} when several tables are submitted.
    kind: frequency | magnitude | model | figure | text.
    name: file name for a single DataFrame/Arrow table (default output.parquet).
    """
    return _upload("api/requests", obj_or_paths, description, provenance_sql, kind, name, url, token)


def resubmit(request_id: str, obj_or_paths, description: str, provenance_sql: str | dict | None = None,
             kind: str = "frequency", *, name: str | None = None, url: str | None = None,
             token: str | None = None) -> dict:
    """Submit a new version of a returned (or not yet reviewed) request."""
    return _upload(f"api/requests/{request_id}/versions", obj_or_paths, description, provenance_sql, kind, name,
                   url, token)


def requests(*, url: str | None = None, token: str | None = None) -> list[dict]:
    """Your requests, newest first: id, permit, state, who acts next, check status."""
    return _call("GET", "api/requests", url=url, token=token)["requests"]


def request(request_id: str, *, url: str | None = None, token: str | None = None) -> dict:
    """One request with its versions, per-file check results and (once complete) the reviews."""
    return _call("GET", f"api/requests/{request_id}", url=url, token=token)


def withdraw(request_id: str, *, url: str | None = None, token: str | None = None) -> dict:
    return _call("POST", f"api/requests/{request_id}/withdraw", url=url, token=token)


def apply_suggested_suppression(request_id: str, *, url: str | None = None, token: str | None = None) -> dict:
    """Resubmit the request with the suppression the checks proposed (a new version)."""
    return _call("POST", f"api/requests/{request_id}/suppression", url=url, token=token)


from spe import dp  # noqa: E402  (spe.dp.count(...), spe.dp.budget())


def report_finding(permit: str, pseudonym: str, text: str, *, url: str | None = None,
                   token: str | None = None) -> dict:
    """Report a finding that matters for one person's health (EHDS Art. 61(5)) on their pseudonym
    (the extract's `person_id`). The HDAB decides whether the person is told; you never learn who
    it is. Returns {"id", "state"}."""
    return _call("POST", "api/findings", url=url, token=token,
                 json={"permit": permit, "pseudonym": pseudonym, "text": text})


def finding(finding_id: str, *, url: str | None = None, token: str | None = None) -> dict:
    """One of your findings: id, permit, state (reported, accepted, rejected, resolved, unresolvable)."""
    return _call("GET", f"api/findings/{finding_id}", url=url, token=token)
