"""Dataset registry: register a source with its schema, fingerprint and disclosure classes.

The stored schema is what permits are validated against and what provisioning plans from,
so a permit can never name a table or column the source does not have.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.datasets.descriptor import Descriptor, parse_descriptor
from hub.datasets.source import SourceRef, fingerprint, introspect
from hub.exceptions import InvalidInput, NotFound
from hub.registry_tables import datasets
from hub.yamlio import load_yaml_file


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str
    source: Path
    fingerprint: str
    schema: dict  # {"person_table", "person_key", "tables": {t: {"rows", "columns": {c: {type, class, source_name, ...}}}}}

    @property
    def ref(self) -> SourceRef:
        return SourceRef(self.kind, self.source)

    def table(self, name: str) -> dict:
        try:
            return self.schema["tables"][name]
        except KeyError:
            raise NotFound(f"dataset {self.name!r} has no table {name!r}") from None

    def column(self, table: str, column: str) -> dict:
        try:
            return self.table(table)["columns"][column]
        except KeyError:
            raise NotFound(f"dataset {self.name!r} table {table!r} has no column {column!r}") from None


def make_schema(descriptor: Descriptor, tables: dict[str, dict]) -> dict:
    """Combine the introspected source with the descriptor (pure). Refuses a descriptor that
    names tables or columns the source does not have."""
    for tname, tdesc in descriptor.tables.items():
        if tname not in tables:
            raise InvalidInput(f"descriptor names table {tname!r} that the source does not have", field=f"tables.{tname}")
        have = {c[0] for c in tables[tname]["columns"]}
        for cname in tdesc["columns"]:
            if cname not in have:
                raise InvalidInput(f"descriptor names column {cname!r} that table {tname!r} does not have",
                                   field=f"tables.{tname}.columns.{cname}")
    if descriptor.person_table not in tables:
        raise InvalidInput(f"person table {descriptor.person_table!r} is not in the source", field="person_table")
    out = {"person_table": descriptor.person_table, "person_key": descriptor.person_key,
           "national_id_column": descriptor.national_id_column, "tables": {}}
    if descriptor.national_id_hashed:
        out["national_id_hashed"] = True
    if descriptor.consent_table:
        if descriptor.consent_table not in tables:
            raise InvalidInput(f"consent table {descriptor.consent_table!r} is not in the source", field="consent_table")
        out["consent_table"] = descriptor.consent_table
    for tname, t in tables.items():
        tdesc = descriptor.tables.get(tname, {})
        cols = {}
        for name, dtype, source_name in t["columns"]:
            info = descriptor.column(tname, name).as_dict()
            if "max_per_person" not in info and tdesc.get("max_per_person"):
                info["max_per_person"] = tdesc["max_per_person"]
            cols[name] = {"type": dtype, "source_name": source_name, **info}
        out["tables"][tname] = {"rows": t["rows"], "columns": cols}
        if tdesc.get("max_per_person"):
            out["tables"][tname]["max_per_person"] = tdesc["max_per_person"]
    return out


def add_dataset(engine: sa.Engine, *, name: str, kind: str, source: str | Path, descriptor_path: str | Path,
                actor: str) -> tuple[Dataset, str]:
    """Register or refresh a dataset. Returns (dataset, "added" | "updated" | "unchanged")."""
    descriptor = parse_descriptor(load_yaml_file(descriptor_path, "dataset descriptor"))
    if descriptor.name != name:
        raise InvalidInput(f"descriptor is for dataset {descriptor.name!r}, not {name!r}", field="name")
    ref = SourceRef(kind, Path(source).resolve())
    tables = introspect(ref)
    schema = make_schema(descriptor, tables)
    fp = fingerprint(ref)
    schema_json = json.dumps(schema, sort_keys=True)
    with engine.begin() as conn:
        old = conn.execute(sa.select(datasets).where(datasets.c.name == name)).mappings().first()
        values = dict(kind=kind, source=str(ref.path), fingerprint=fp, schema_json=schema_json,
                      registered_at=utc_now_iso(), registered_by=actor)
        if old is None:
            conn.execute(datasets.insert().values(name=name, **values))
            outcome = "added"
        elif (old["fingerprint"], old["schema_json"], old["source"]) == (fp, schema_json, str(ref.path)):
            outcome = "unchanged"
        else:
            conn.execute(datasets.update().where(datasets.c.name == name).values(**values))
            outcome = "updated"
        if outcome != "unchanged":
            audit.record(conn, actor=actor, role="operator", action="dataset." + ("add" if outcome == "added" else "update"),
                         object_id=name, detail={"kind": kind, "fingerprint": fp, "tables": len(tables)})
    return Dataset(name, kind, ref.path, fp, schema), outcome


def get_dataset(engine: sa.Engine | sa.Connection, name: str) -> Dataset:
    """The registered dataset `name`; `engine` may be a connection (read in the caller's transaction:
    on SQLite a second connection would wait for the caller's write lock)."""
    if isinstance(engine, sa.Connection):
        row = engine.execute(sa.select(datasets).where(datasets.c.name == name)).mappings().first()
    else:
        with engine.connect() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no dataset named {name!r} is registered (spe dataset list)")
    return _to_dataset(row)


def list_datasets(engine: sa.Engine) -> list[Dataset]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(datasets).order_by(datasets.c.name)).mappings().all()
    return [_to_dataset(r) for r in rows]


def _to_dataset(row) -> Dataset:
    return Dataset(row["name"], row["kind"], Path(row["source"]), row["fingerprint"], json.loads(row["schema_json"]))
