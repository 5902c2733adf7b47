"""The catalogue's business layer: the only code that changes catalogue entries.

An entry is stored only when it parses (`model.parse_entry`), names a registered dataset and its
HealthDCAT-AP graph conforms to the shapes (`shacl.validate`): a broken entry is refused with the
failing shape and nothing is stored. Who may change an entry: an operator (any entry; a new entry
names its maintainers), or a data holder listed among the entry's maintainers. Each change writes
`catalogue.create` / `catalogue.update` in the same transaction. Must not import `egress`.
"""

from __future__ import annotations

import hashlib
import json
import threading

import sqlalchemy as sa

from hub import audit
from hub.audit.store import utc_now_iso
from hub.datasets.registry import get_dataset, list_datasets
from hub.exceptions import Forbidden, InvalidInput, NotFound
from hub.frontoffice.catalogue import dcat
from hub.frontoffice.catalogue.model import is_maintainer, parse_entry
from hub.frontoffice.catalogue.shacl import validate
from hub.frontoffice.roles import DATA_HOLDER, OPERATOR, Actor
from hub.frontoffice.tables import catalogue_entries
from hub.permits.access import boolean_guard


def check_can_edit(entry: dict | None, actor: Actor) -> None:
    """Operators edit any entry; a data holder edits the entries that list them as maintainer."""
    if actor.has(OPERATOR):
        return
    if entry is None:
        raise Forbidden("only an operator creates a catalogue entry (and names its data-holder maintainers)")
    if not actor.has(DATA_HOLDER):
        raise Forbidden(f"{actor.username} is not a data holder")
    if not is_maintainer(entry, actor.username):
        raise Forbidden(f"{actor.username} does not maintain the catalogue entry of {entry['dataset']}")


can_edit = boolean_guard(check_can_edit)


class Catalogue:
    def __init__(self, engine: sa.Engine, config: dict):
        self.engine = engine
        self.config = config
        self._export_cache: dict[tuple, bytes] = {}
        self._lock = threading.Lock()

    # --- reading -------------------------------------------------------------------------
    def get(self, dataset: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(catalogue_entries).where(catalogue_entries.c.dataset == dataset)).first()
        if row is None:
            raise NotFound(f"no catalogue entry for dataset {dataset!r}")
        return self._entry(row)

    def find(self, dataset: str) -> dict | None:
        try:
            return self.get(dataset)
        except NotFound:
            return None

    def entries(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(catalogue_entries).order_by(catalogue_entries.c.dataset)).all()
        return [self._entry(r) for r in rows]

    def items(self) -> list[tuple[dict, dict]]:
        """[(entry, registered dataset schema)] of every entry, by dataset name."""
        schemas = {d.name: d.schema for d in list_datasets(self.engine)}
        return [(e, schemas[e["dataset"]]) for e in self.entries() if e["dataset"] in schemas]

    @staticmethod
    def _entry(row) -> dict:
        entry = json.loads(row.document_json)
        entry["_version"] = row.version
        entry["_updated_at"] = row.updated_at
        return entry

    # --- changing ------------------------------------------------------------------------
    def put(self, raw: dict, actor: Actor) -> tuple[dict, str]:
        """Create or replace an entry. Returns (entry, "created" | "updated" | "unchanged")."""
        if not isinstance(raw, dict):
            raise InvalidInput("a catalogue entry must be a mapping", field="(top level)")
        raw = {k: v for k, v in raw.items() if not str(k).startswith("_")}  # read-back fields (_version)
        name = raw.get("dataset")
        if not isinstance(name, str):
            raise InvalidInput("the entry names no dataset", field="dataset")
        old = self.find(name)
        check_can_edit(old, actor)
        dataset = get_dataset(self.engine, name)
        entry = parse_entry(raw, dataset.schema)
        if old is not None and not actor.has(OPERATOR) and entry["maintainers"] != old["maintainers"]:
            raise Forbidden("only an operator changes who maintains a catalogue entry")
        self.check_conforms(entry, dataset.schema)
        doc_json = json.dumps(entry, sort_keys=True)
        digest = hashlib.sha256(doc_json.encode()).hexdigest()
        now = utc_now_iso()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(catalogue_entries).where(catalogue_entries.c.dataset == name)).first()
            if row is not None and row.document_json == doc_json:
                return self._entry(row), "unchanged"
            version = 1 if row is None else row.version + 1
            values = dict(version=version, document_json=doc_json, updated_at=now, updated_by=actor.username)
            if row is None:
                conn.execute(catalogue_entries.insert().values(dataset=name, **values))
            else:
                conn.execute(catalogue_entries.update().where(catalogue_entries.c.dataset == name,
                                                              catalogue_entries.c.version == row.version).values(**values))
            outcome = "created" if row is None else "updated"
            audit.record(conn, actor=actor.username, role=OPERATOR if actor.has(OPERATOR) else DATA_HOLDER,
                         action=f"catalogue.{'create' if row is None else 'update'}", object_id=name,
                         detail={"version": version, "sha256": digest, "maintainers": entry["maintainers"]})
        return self.get(name), outcome

    def check_conforms(self, entry: dict, dataset_schema: dict) -> None:
        violations = self.violations(entry, dataset_schema)
        if violations:
            v = violations[0]
            more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            raise InvalidInput(f"not valid HealthDCAT-AP: {v.shape} {v.path}: {v.message}{more}", field=v.path)

    def violations(self, entry: dict, dataset_schema: dict):
        graph = dcat.make_catalogue_graph([(entry, dataset_schema)], self.config)
        return validate(graph, entry.get("access_rights", "NON_PUBLIC"))

    def validate_all(self) -> dict[str, list]:
        """{dataset: violations} of every stored entry against today's dataset schema and config."""
        return {entry["dataset"]: self.violations(entry, schema) for entry, schema in self.items()}

    # --- the harvest endpoint --------------------------------------------------------------
    def export(self, fmt: str, page: int | None = None) -> bytes:
        """The catalogue (or one page of it) as Turtle or JSON-LD; cached until an entry, a dataset
        or the configuration changes."""
        if fmt not in dcat.FORMATS:
            raise InvalidInput(f"format must be one of {', '.join(dcat.FORMATS)}", field="format")
        items = self.items()
        size = self.config["catalogue"]["page_size"]
        if page is not None:
            last = max(1, -(-len(items) // size))
            if not 1 <= page <= last:
                raise NotFound(f"page {page} does not exist; pages are 1..{last}")
        key = (fmt, page, json.dumps(self.config, sort_keys=True), tuple((e["dataset"], e["_version"]) for e, _ in items),
               tuple(sorted((d.name, d.fingerprint) for d in list_datasets(self.engine))))
        with self._lock:
            cached = self._export_cache.get(key)
        if cached is not None:
            return cached
        shown = items if page is None else items[(page - 1) * size: page * size]
        graph = dcat.make_catalogue_graph([(e, s) for e, s in shown], self.config,
                                          page=page, total=len(items), page_size=size)
        body = dcat.serialize(graph, fmt)
        with self._lock:
            if len(self._export_cache) > 32:
                self._export_cache.clear()
            self._export_cache[key] = body
        return body
