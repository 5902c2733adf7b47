"""Run a provisioning: execute the plan with DuckDB into a temporary directory, write the
manifest, switch atomically, then record the new current extract (and its audit event).

A crash or an error at any point before the final rename leaves the previous extract
untouched and current; leftovers `.tmp-*` are removed by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import duckdb
import sqlalchemy as sa

from hub import __version__, audit
from hub.audit.store import utc_now_iso
from hub.citizens.membership import persons_digest, record_extract_persons
from hub.datasets.registry import get_dataset
from hub.datasets.source import attach, quote_ident, sql_literal, source_tables
from hub.exceptions import Failure, Refused
from hub.permits.store import PermitStore
from hub.provision.extracts import permit_dir
from hub.provision.keys import KeyStore, hmac_pads
from hub.provision.kanon import gate_message, k_anonymity_report, small_class_sizes
from hub.provision.plan import make_extract_plan
from hub.registry_tables import extracts, optouts
from hub.settings import Settings
from hub.staging import fsync_dir


@dataclass(frozen=True)
class ProvisionResult:
    permit_id: str
    extract_version: int
    path: Path
    manifest: dict
    seconds: float


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def provision(engine: sa.Engine, settings: Settings, permit_id: str, actor: str, *,
              progress: Callable[[str], None] = lambda msg: None,
              memory_limit: str = "2GB", threads: int | None = None) -> ProvisionResult:
    started = time.monotonic()
    permit = PermitStore(engine).get(permit_id)
    if permit.status not in ("active", "draft", "suspended"):
        raise Refused(f"permit {permit_id} is {permit.status}: no extract can be provisioned")
    dataset = get_dataset(engine, permit.dataset)
    keys = KeyStore(settings.keys_dir)
    ipad, opad = hmac_pads(keys.permit_key(permit.id))
    oipad, oopad = hmac_pads(keys.optout_key())
    with engine.connect() as conn:
        optout_rows = [r[0] for r in conn.execute(sa.select(optouts.c.id_hash).order_by(optouts.c.id_hash))]
        last = conn.execute(sa.select(sa.func.max(extracts.c.extract_version))
                            .where(extracts.c.permit_id == permit.id)).scalar()
    version = (last or 0) + 1
    snapshot = hashlib.sha256("\n".join(optout_rows).encode()).hexdigest()

    root = permit_dir(settings, permit.id)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    final = root / str(version)
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
        con.execute(f"SET temp_directory = {sql_literal(str(tmp / '.spill'))}")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        attach(con, dataset.ref)
        relations = source_tables(con, dataset.ref)
        national_id = dataset.schema.get("national_id_column", "person_source_value")
        plan = make_extract_plan(permit, dataset.schema, relations, national_id_column=national_id)
        if optout_rows and not plan.uses_optout:
            raise Refused(f"dataset {dataset.name} has no national identifier column; opt-outs cannot be applied")
        con.execute("CREATE TEMP TABLE optout_hashes (h VARCHAR)")
        if optout_rows:
            con.executemany("INSERT INTO optout_hashes VALUES (?)", [[h] for h in optout_rows])
        key_params = {"ipad": ipad, "opad": opad}
        cohort_params = dict(plan.cohort_params, **key_params)
        if plan.uses_optout:
            cohort_params.update(optout_ipad=oipad, optout_opad=oopad)
        progress("selecting the cohort")
        con.execute(plan.cohort_sql, _used(plan.cohort_sql, cohort_params))
        persons = con.execute("SELECT count(*) FROM cohort").fetchone()[0]
        held = [r[0] for r in con.execute("SELECT DISTINCT nid_hash FROM cohort WHERE nid_hash IS NOT NULL")
                .fetchall()] if plan.uses_optout else []
        excluded = 0
        if plan.uses_optout and optout_rows:
            plan_all = make_extract_plan(permit, dataset.schema, relations, optouts=False)
            con.execute(plan_all.cohort_sql.replace("TEMP TABLE cohort", "TEMP TABLE cohort_all"),
                        _used(plan_all.cohort_sql, dict(plan_all.cohort_params, **key_params)))
            excluded = con.execute("SELECT count(*) FROM cohort_all").fetchone()[0] - persons
        tables = {}
        for i, tp in enumerate(plan.tables, 1):
            progress(f"[{i}/{len(plan.tables)}] writing {tp.name}")
            out = tmp / f"{tp.name}.parquet"
            params = dict(tp.params, **key_params)
            con.execute(f"COPY ({tp.sql}) TO {sql_literal(str(out))} (FORMAT parquet, COMPRESSION zstd)",
                        _used(tp.sql, params))
            written = f"read_parquet({sql_literal(str(out))})"
            cols = con.execute(f"DESCRIBE SELECT * FROM {written}").fetchall()
            person_key = dataset.schema.get("person_key", "person_id")
            has_pid = tp.has_persons and any(c[0] == person_key for c in cols)
            distinct = f"count(DISTINCT {quote_ident(person_key)})" if has_pid else "NULL"
            rows, table_persons = con.execute(f"SELECT count(*), {distinct} FROM {written}").fetchone()
            # person_key: the column that says whose row it is (None: the table has no persons);
            # the egress checks trace every provenance query's rows to it
            tables[tp.name] = {"file": out.name, "rows": rows, "sha256": sha256_file(out),
                               "columns": [{"name": c[0], "type": c[1]} for c in cols],
                               "person_key": person_key if has_pid else None}
            if has_pid:  # distinct persons: lets the egress checks skip a scan when rows == persons
                tables[tp.name]["persons"] = table_persons
        kanon = k_anonymity_report(con, tmp / f"{plan.person_table}.parquet", plan.quasi_identifiers,
                                   permit.egress.threshold) if plan.person_table in tables else None
        small = (small_class_sizes(con, tmp / f"{plan.person_table}.parquet", plan.quasi_identifiers, permit.min_k)
                 if permit.min_k and plan.person_table in tables else {})
    except duckdb.Error as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise Failure(f"provisioning {permit.id} failed in DuckDB: {str(err).splitlines()[0]}") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        con.close()
    if small:  # the k-anonymity gate: stop before the switch, the previous extract stays current
        shutil.rmtree(tmp, ignore_errors=True)
        message = gate_message(permit.id, permit.min_k, plan.quasi_identifiers, small)
        with engine.begin() as conn:
            audit.record(conn, actor=actor, role="operator", action="extract.provision", permit_id=permit.id,
                         outcome="refused",
                         detail={"rows": 0, "seconds": round(time.monotonic() - started, 3), "reason": "k_anonymity",
                                 "min_k": permit.min_k, "quasi_identifiers": list(plan.quasi_identifiers),
                                 "small_classes": {str(n): c for n, c in small.items()}})
        raise Refused(message)
    shutil.rmtree(tmp / ".spill", ignore_errors=True)
    manifest = {
        "format": 1,
        "permit_id": permit.id,
        "permit_version": permit.version,
        "extract_version": version,
        "dataset": dataset.name,
        "source_fingerprint": dataset.fingerprint,
        "optout": {"snapshot_sha256": snapshot, "entries": len(optout_rows), "excluded": excluded},
        "persons": persons,
        # the keyed hashes of the persons it holds stay off-enclave (hub.citizens.membership)
        "person_hashes": {"count": len(held), "sha256": persons_digest(held)},
        "tables": tables,
        "k_anonymity": kanon,
        "tool": {"name": "spe", "version": __version__, "duckdb": duckdb.__version__},
        "created_at": utc_now_iso(),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    for f in tmp.iterdir():
        os.chmod(f, 0o444)
    os.chmod(tmp, 0o555)
    fsync_dir(tmp)
    os.rename(tmp, final)  # atomic switch on one filesystem
    fsync_dir(root)
    seconds = time.monotonic() - started
    with engine.begin() as conn:
        conn.execute(extracts.update().where(extracts.c.permit_id == permit.id, extracts.c.state == "current")
                     .values(state="superseded"))
        conn.execute(extracts.insert().values(permit_id=permit.id, extract_version=version,
                                              permit_version=permit.version, path=str(final),
                                              manifest_json=json.dumps(manifest, sort_keys=True),
                                              state="current", created_at=utc_now_iso()))
        record_extract_persons(conn, permit.id, version, held)
        audit.record(conn, actor=actor, role="operator", action="extract.provision", permit_id=permit.id,
                     object_id=f"{permit.id}/{version}",
                     detail={"permit_version": permit.version, "persons": persons, "excluded_optouts": excluded,
                             "rows": sum(t["rows"] for t in tables.values()), "seconds": round(seconds, 3),
                             "manifest_sha256": sha256_file(final / "manifest.json")})
    return ProvisionResult(permit.id, version, final, manifest, seconds)


def _used(sql: str, params: dict) -> dict:
    """Only the named parameters a statement references (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}
