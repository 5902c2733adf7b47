"""Pure extract planner: permit + dataset schema -> parameterised DuckDB SQL.

`make_extract_plan` builds every statement provisioning runs. Identifiers come only from the
registered schema (already checked against the permit) and are quoted; every value from the
permit (codes, ages, dates, thresholds) is a bound parameter: a permit never contributes SQL.
Key material is bound as parameters too and never appears in the SQL text or the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.datasets.source import quote_ident as q
from hub.exceptions import NotFound
from hub.permits.model import Permit, date_window_columns
from hub.provision.keys import hmac_sql

PSEUDONYM_HEX = 24  # 96 bits: collision-free for any realistic population


@dataclass(frozen=True)
class TablePlan:
    name: str
    sql: str  # a SELECT producing the extract rows
    params: dict
    columns: tuple  # (name, class)
    has_persons: bool


@dataclass(frozen=True)
class Plan:
    cohort_sql: str
    cohort_params: dict
    tables: tuple[TablePlan, ...]
    quasi_identifiers: tuple[str, ...]  # person-table columns of the extract for the k-anonymity report
    person_table: str
    uses_optout: bool


def _src(schema: dict, table: str, column: str) -> str:
    return q(schema["tables"][table]["columns"][column]["source_name"])


def make_extract_plan(permit: Permit, schema: dict, relations: dict[str, str], *,
                      national_id_column: str | None = "person_source_value", optouts: bool = True) -> Plan:
    """`relations` maps lower-case table names to SQL relations (from hub.datasets.source)."""
    person_table, person_key = schema["person_table"], schema["person_key"]
    needed = {person_table, *permit.tables, *(r["table"] for r in permit.cohort.get("codes", []))}
    missing = sorted(needed - set(relations))
    if missing:
        raise NotFound(f"source of dataset {permit.dataset!r} no longer has table(s) {', '.join(missing)}; "
                       f"restore it or register the dataset again")
    pt = schema["tables"][person_table]["columns"]
    params: dict = {}
    where = ["TRUE"]
    cohort = permit.cohort
    age = cohort.get("age")
    if age:
        params["age_at_year"] = int(str(age["at"])[:4])
        params["age_min"] = int(age.get("min", 0))
        params["age_max"] = int(age.get("max", 150))
        where.append(f"($age_at_year - p.{_src(schema, person_table, 'year_of_birth')}) BETWEEN $age_min AND $age_max")
    windows = date_window_columns(permit)
    for i, rule in enumerate(cohort.get("codes", [])):
        t, c = rule["table"], rule["column"]
        params[f"codes_{i}"] = [str(v) for v in rule["any_of"]]
        cond = [f"CAST(e.{_src(schema, t, c)} AS VARCHAR) IN (SELECT unnest($codes_{i}))"]
        wcol = windows.get(t) or (date_window_columns_for(permit, t))
        if wcol:
            params["win_from"], params["win_to"] = str(cohort["date_window"]["from"]), str(cohort["date_window"]["to"])
            cond.append(f"CAST(e.{_src(schema, t, wcol)} AS DATE) BETWEEN CAST($win_from AS DATE) AND CAST($win_to AS DATE)")
        where.append(f"p.{_src(schema, person_table, person_key)} IN (SELECT e.{_src(schema, t, person_key)} "
                     f"FROM {relations[t]} e WHERE {' AND '.join(cond)})")
    uses_optout = bool(optouts and national_id_column and national_id_column in pt)
    # the opt-out register's keyed hash of each person's national identifier: excludes opted-out
    # persons and records who the extract holds (hub.citizens.membership); never leaves provisioning
    nid_hash = ""
    if uses_optout:
        nid_ref = 'p.' + _src(schema, person_table, national_id_column)
        # a donated dataset holds the hash itself (hub.citizens.trustee): the clear identifier never reached it
        nid_hash = (f"CAST({nid_ref} AS VARCHAR)" if schema.get("national_id_hashed")
                    else hmac_sql(nid_ref, 'optout_ipad', 'optout_opad'))
        where.append(f"NOT EXISTS (SELECT 1 FROM optout_hashes o WHERE o.h = {nid_hash})")
    consent = schema.get("consent_table")
    if consent:
        # only persons whose unexpired consent covers the permit's purpose (HEALTH-X dataLOFT donations)
        params["consent_purpose"] = permit.purpose
        where.append(f"p.{_src(schema, person_table, person_key)} IN (SELECT c.{_src(schema, consent, person_key)} "
                     f"FROM {relations[consent]} c WHERE list_contains(string_split(c.{_src(schema, consent, 'purposes')}, ' '), "
                     f"$consent_purpose) AND CAST(c.{_src(schema, consent, 'expires')} AS DATE) >= current_date "
                     f"AND NOT c.{_src(schema, consent, 'withdrawn')})")
    pid = f"p.{_src(schema, person_table, person_key)}"
    pseudo = f"substr({hmac_sql(repr('person:') + ' || ' + pid, 'ipad', 'opad')}, 1, {PSEUDONYM_HEX})"
    shash = f"CAST(('0x' || substr({hmac_sql(repr('shift:') + ' || ' + pid, 'ipad', 'opad')}, 1, 8)) AS BIGINT)"
    cohort_sql = (f"CREATE TEMP TABLE cohort AS SELECT {pid} AS pid, {pseudo} AS pseudo, {shash} AS shash"
                  f"{', ' + nid_hash + ' AS nid_hash' if nid_hash else ''} "
                  f"FROM {relations[person_table]} p WHERE {' AND '.join(where)}")

    tables = []
    for table, columns in permit.tables.items():
        tcols = schema["tables"][table]["columns"]
        has_persons = person_key in tcols
        exprs, out_cols, tparams = [], [], {}
        for col in columns:
            info = tcols[col]
            cls = info["class"]
            ref = f"base.{q(info['source_name'])}"
            rule = permit.generalise.get(f"{table}.{col}")
            if cls == "direct_identifier":
                continue  # never leaves the source (the permit check refuses it too)
            if col == person_key or cls == "person_key":
                expr = "base.__pseudo" if has_persons else f"substr({hmac_sql(repr('person:') + ' || ' + ref, 'ipad', 'opad')}, 1, {PSEUDONYM_HEX})"
            elif info.get("key"):
                # keyed by column name, so the same visit id joins across tables of one permit
                expr = (f"CASE WHEN {ref} IS NULL THEN NULL ELSE substr("
                        f"{hmac_sql(repr(col + ':') + ' || ' + ref, 'ipad', 'opad')}, 1, {PSEUDONYM_HEX}) END")
            elif rule:
                expr = _generalise(ref, rule, col, tparams, has_persons)
            else:
                expr = ref
            exprs.append(f"{expr} AS {q(col)}")
            out_cols.append((col, cls))
        conds = ["TRUE"]
        wcol = windows.get(table)
        if wcol:
            tparams["win_from"], tparams["win_to"] = str(cohort["date_window"]["from"]), str(cohort["date_window"]["to"])
            conds.append(f"CAST(t.{_src(schema, table, wcol)} AS DATE) BETWEEN CAST($win_from AS DATE) AND CAST($win_to AS DATE)")
        if has_persons:
            base = (f"SELECT t.*, c.pseudo AS __pseudo, c.shash AS __shash, c.pid AS __pid FROM {relations[table]} t "
                    f"JOIN cohort c ON t.{_src(schema, table, person_key)} = c.pid WHERE {' AND '.join(conds)}")
        else:
            base = f"SELECT t.* FROM {relations[table]} t WHERE {' AND '.join(conds)}"
        sql = f"WITH base AS ({base}) SELECT {', '.join(exprs)} FROM base"
        used = {k: v for k, v in tparams.items()}
        tables.append(TablePlan(table, sql, used, tuple(out_cols), has_persons))

    qis = tuple(c for c, cls in next((t.columns for t in tables if t.name == person_table), ())
                if cls == "quasi_identifier")
    return Plan(cohort_sql, params, tuple(tables), qis, person_table, uses_optout)


def date_window_columns_for(permit: Permit, table: str) -> str | None:
    """Date column of a cohort code table that is not itself part of the extract."""
    dw = permit.cohort.get("date_window")
    if not dw:
        return None
    from hub.permits.model import DEFAULT_DATE_COLUMNS

    return (dw.get("columns") or {}).get(table) or DEFAULT_DATE_COLUMNS.get(table)


def _generalise(ref: str, rule: dict, col: str, params: dict, has_persons: bool) -> str:
    if rule.get("date") == "year":
        return f"CAST(year({ref}) AS INTEGER)"
    if rule.get("date") == "month":
        return f"CAST(date_trunc('month', {ref}) AS DATE)"
    if rule.get("date") == "shift":
        n = int(rule["max_days"])
        params[f"shift_{col}"] = n
        if not has_persons:
            raise ValueError(f"per-person date shift of {col} needs a table with persons")
        # the same shift for every date of one person keeps intervals between their events exact
        return f"CAST({ref} AS DATE) + CAST((base.__shash % (2 * $shift_{col} + 1)) - $shift_{col} AS INTEGER)"
    if "band" in rule:
        params[f"band_{col}"] = int(rule["band"])
        return f"CAST(floor({ref} / $band_{col}) * $band_{col} AS BIGINT)"
    if "truncate" in rule:
        params[f"trunc_{col}"] = int(rule["truncate"])
        return f"substr(CAST({ref} AS VARCHAR), 1, $trunc_{col})"
    if "min_count" in rule:
        params[f"k_{col}"] = int(rule["min_count"])
        who = "__pid" if has_persons else "*"
        counted = f"count(DISTINCT {who})" if has_persons else "count(*)"
        return (f"CASE WHEN CAST({ref} AS VARCHAR) IN (SELECT CAST({ref.split('.', 1)[1]} AS VARCHAR) FROM base "
                f"GROUP BY 1 HAVING {counted} >= $k_{col}) THEN CAST({ref} AS VARCHAR) ELSE 'other' END")
    raise ValueError(f"unknown generalisation rule {rule!r}")
