"""Whose row is it? The person behind every row of a FROM clause, traced to the extract's key.

`Tracer.relation(from_table, scope)` returns the `Person` of a FROM tree: an expression over
its columns that is the row's person, traced through

- extract tables: the table's person key column (the manifest's `person_key`, `person_id` by
  default; a table without one, e.g. a vocabulary, has no persons);
- subqueries and CTEs: they are made to output the person as one more column
  (`spe_person<n>`, appended to their SELECT list, in every branch of a UNION); a subquery
  that aggregates must keep the person among its group keys (one row per person and group),
  which DuckDB's binder enforces when the evidence query runs;
- joins: on the person key (`ON a.person_id = b.person_id`, `USING (person_id)`) the row's
  person is either side's; otherwise it is whichever side has one, and when both have one the
  evidence query also checks that no row pairs two different persons (`conflicts`).

`Person.unique` says the relation has at most one row per person (rows are persons: an extract
table whose manifest says so, filtered or projected, or grouped by the person), which lets the
evidence query skip the per-person aggregation. `Person.exact` says exposing the person changed
no row of the relation (no DISTINCT, UNION or GROUP BY ALL had to take the new column in), so
the rewritten query may stand in for the original. The tracer rewrites the parse tree it is
given in place (the caller's copy).

Pure: the parse tree only (`egress.provenance.tree`), whether an extract table has one row per
person is a callable of the caller's. Must not import the sandbox or the web layer.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping

from egress.provenance.shape import Unsupported, cte_entry, is_aggregate_node
from egress.provenance.tree import aliased, any_of, build, column, expressions, function_name, same

DEFAULT_PERSON_KEY = "person_id"
_ROW_MULTIPLYING = frozenset({"unnest", "generate_subscripts"})


@dataclass(frozen=True)
class TableFacts:
    """What the manifest says of one extract table: its person key column (None: the table has
    no persons) and its columns in order (None: not listed)."""

    person_key: str | None = DEFAULT_PERSON_KEY
    columns: tuple[str, ...] | None = None


@dataclass
class Person:
    expr: dict
    unique: bool = False
    exact: bool = True
    conflicts: list[dict] = field(default_factory=list)


class Tracer:
    def __init__(self, tables: Mapping[str, TableFacts], rows_are_persons: Callable[[str], bool]):
        self.tables = {name.lower(): facts for name, facts in tables.items()}
        self.rows_are_persons = rows_are_persons
        self._names = itertools.count()
        self._ctes: dict[int, tuple[str, bool, bool, str | None]] = {}

    def relation(self, ref: dict | None, scope: list[dict], *, want_unique: bool = True) -> Person | None:
        """The person of a FROM tree (None: it reads no table with persons)."""
        kind = (ref or {}).get("type")
        if kind == "BASE_TABLE":
            return self._table(ref, scope, want_unique)
        if kind == "SUBQUERY":
            if not ref.get("alias"):
                ref["alias"] = f"spe_q{next(self._names)}"
            name, unique, exact, conflict = self.expose(ref["subquery"]["node"], scope, want_unique=want_unique)
            return self._person_of(ref["alias"], name, unique, exact, conflict)
        if kind == "JOIN":
            return self._join(ref, scope)
        if kind in (None, "EMPTY", "TABLE_FUNCTION", "EXPRESSION_LIST"):
            return None  # VALUES, range(), unnest(...): no persons
        raise Unsupported(f"{kind} in FROM is not supported for evidence")

    def expose(self, node: dict, scope: list[dict], name: str | None = None, *,
               want_unique: bool = True) -> tuple[str, bool, bool, str | None]:
        """Make a query node output its rows' person as column `name` (and a column that is
        true where a row joins two persons, if it may); (name, unique, exact, conflict name)."""
        name = name or f"spe_person{next(self._names)}"
        scope = scope + list(node.get("cte_map", {}).get("map", []))
        if node.get("type") == "SET_OPERATION_NODE":
            children = node.get("children") or [c for c in (node.get("left"), node.get("right")) if c]
            exact = node.get("setop_type") == "UNION" and bool(node.get("setop_all"))
            for child in children:
                _, _, child_exact, conflict = self.expose(child, scope, name, want_unique=False)
                if conflict is not None:
                    raise Unsupported("a join inside a UNION is not on the person key: join on person_id")
                exact = exact and child_exact
            return name, False, exact, None
        if node.get("type") != "SELECT_NODE":
            raise Unsupported(f"{node.get('type')} subqueries are not supported for evidence")
        person = self.relation(node.get("from_table"), scope, want_unique=want_unique)
        if person is None:
            raise Unsupported("a subquery or CTE reads no extract table with a person key: the persons behind "
                              "its rows are unknown")
        conflict = None
        if is_aggregate_node(node):
            if len(node.get("group_sets") or []) > 1:
                raise Unsupported("GROUPING SETS/ROLLUP/CUBE inside a subquery or CTE are not supported for evidence")
            groups = node.get("group_expressions") or []
            unique = len(groups) == 1 and is_person(groups[0], person.expr)
            exact = person.exact and node.get("aggregate_handling") != "FORCE_AGGREGATES"
            if person.conflicts:
                conflict = f"{name}_x"
                node["select_list"].append(build("bool_or({0})", any_of(person.conflicts), alias=conflict))
        else:
            multiplies = any(e.get("class") == "FUNCTION" and function_name(e) in _ROW_MULTIPLYING
                             for item in node.get("select_list", []) for e in expressions(item))
            distinct = any(m.get("type") == "DISTINCT_MODIFIER" for m in node.get("modifiers") or [])
            unique = person.unique and not multiplies
            exact = person.exact and not distinct
            if person.conflicts:
                conflict = f"{name}_x"
                node["select_list"].append(aliased(any_of(person.conflicts), conflict))
        node["select_list"].append(aliased(person.expr, name))
        return name, unique, exact, conflict

    # --- FROM items -------------------------------------------------------------------------
    def _table(self, ref: dict, scope: list[dict], want_unique: bool) -> Person | None:
        qualifier = ref.get("alias") or ref["table_name"]
        entry = cte_entry(scope, ref)
        if entry is not None:
            if id(entry) not in self._ctes:
                position = next(i for i, e in enumerate(scope) if e is entry)
                self._ctes[id(entry)] = self.expose(entry["value"]["query_node"], scope[:position],
                                                    want_unique=want_unique)
            name, unique, exact, conflict = self._ctes[id(entry)]
            return self._person_of(qualifier, name, unique, exact, conflict)
        if ref.get("catalog_name") or ref.get("schema_name", "") not in ("", "main"):
            raise Unsupported(f"table {ref.get('schema_name')}.{ref['table_name']} is not in the extract")
        facts = self.tables.get(ref["table_name"].lower())
        if facts is None:
            raise Unsupported(f"table {ref['table_name']!r} is not in the extract")
        if facts.person_key is None:
            return None
        key = facts.person_key
        aliases = ref.get("column_name_alias") or []
        if aliases:
            if facts.columns is None or key not in facts.columns:
                raise Unsupported(f"column aliases on table {ref['table_name']!r}: the person key cannot be found")
            position = facts.columns.index(key)
            key = aliases[position] if position < len(aliases) else key
        unique = want_unique and self.rows_are_persons(ref["table_name"])
        return Person(column(qualifier, key), unique=unique)

    def _join(self, ref: dict, scope: list[dict]) -> Person | None:
        left = self.relation(ref.get("left"), scope, want_unique=False)
        right = self.relation(ref.get("right"), scope, want_unique=False)
        kind = ref.get("join_type")
        if kind in ("SEMI", "ANTI"):
            return _not_unique(left)   # only the left side's columns remain
        if kind in ("RIGHT_SEMI", "RIGHT_ANTI"):
            return _not_unique(right)
        if left is None or right is None:
            return _not_unique(left or right)
        conflicts = left.conflicts + right.conflicts
        if _joined_on(ref, left.expr, right.expr):
            expr = {"RIGHT": right.expr, "OUTER": build("coalesce({0}, {1})", left.expr, right.expr)}.get(
                kind, left.expr)
        else:
            # Not joined on the person key: the row's person is whichever side has one; a row
            # whose two sides are two persons is about both, which the evidence query refuses.
            expr = build("coalesce({0}, {1})", left.expr, right.expr)
            conflicts = conflicts + [build("{0} <> {1}", left.expr, right.expr)]
        return Person(expr, unique=False, exact=left.exact and right.exact, conflicts=conflicts)

    def _person_of(self, qualifier: str, name: str, unique: bool, exact: bool, conflict: str | None) -> Person:
        return Person(column(qualifier, name), unique=unique, exact=exact,
                      conflicts=[column(qualifier, conflict)] if conflict else [])


def _not_unique(person: Person | None) -> Person | None:
    if person is None:
        return None
    return Person(person.expr, unique=False, exact=person.exact, conflicts=person.conflicts)


def _joined_on(ref: dict, left: dict, right: dict) -> bool:
    """Does the join condition equate the two persons (`ON l = r [AND ...]` or `USING (key)`)?"""
    using = [c.lower() for c in ref.get("using_columns") or []]
    if using and left.get("class") == right.get("class") == "COLUMN_REF" \
            and left["column_names"][-1].lower() in using and right["column_names"][-1].lower() in using \
            and left["column_names"][-1].lower() == right["column_names"][-1].lower():
        return True
    if ref.get("ref_type") == "NATURAL" and left.get("class") == right.get("class") == "COLUMN_REF" \
            and left["column_names"][-1].lower() == right["column_names"][-1].lower():
        return True
    condition = ref.get("condition")
    terms = [condition]
    while terms:
        term = terms.pop()
        if not isinstance(term, dict):
            continue
        if term.get("type") == "CONJUNCTION_AND":
            terms.extend(term.get("children", []))
        elif term.get("type") == "COMPARE_EQUAL":
            pair = (term.get("left"), term.get("right"))
            if (same(pair[0], left) and same(pair[1], right)) or (same(pair[0], right) and same(pair[1], left)):
                return True
    return False


def is_person(expr: dict | None, person: dict) -> bool:
    """Is `expr` the person column itself (`GROUP BY person_id`, `count(DISTINCT p.person_id)`)?"""
    if expr is None:
        return False
    if same(expr, person):
        return True
    if expr.get("class") != "COLUMN_REF" or person.get("class") != "COLUMN_REF":
        return False
    mine, theirs = [n.lower() for n in expr["column_names"]], [n.lower() for n in person["column_names"]]
    return mine[-1] == theirs[-1] and (len(mine) == 1 or mine[-2] == theirs[-2])
