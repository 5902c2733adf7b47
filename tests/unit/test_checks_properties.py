"""Property tests of the disclosure checks (issue 15) with a seeded generator of person-level data.

Random persons with categorical attributes and a value; random count and magnitude tables over
1 to 3 of the attributes, with all their margins (`All` rows); planted cells exactly at the
threshold and one below. The checker's per-cell verdicts are compared with a brute-force
recomputation from the persons, and every suppression pattern SPE proposes is attacked by an
LP attacker and a differencing attacker written independently of the checker
(tests/sdc_attackers.py: they import nothing from `egress.checks`).
"""

from __future__ import annotations

import itertools
import random

import pyarrow as pa
import pytest

from egress.checks import CellEvidence, Evidence, check_table, label_key
from egress.checks.secondary import apply_pattern
from tests.sdc_attackers import differencing_attack, exposed, lp_attack

THRESHOLD = 10
ATTRIBUTES = {"sex": ["F", "M"], "region": ["n", "s", "e", "w"], "band": ["a", "b", "c"]}


def make_persons(rng: random.Random, count: int) -> list[dict]:
    persons = []
    for pid in range(count):
        persons.append({"pid": pid, **{k: rng.choice(v) for k, v in ATTRIBUTES.items()},
                        "value": float(rng.randint(1, 500))})
    return persons


def plant_boundary(rng: random.Random, persons: list[dict], dims: list[str]) -> None:
    """Move persons so that one inner cell holds exactly THRESHOLD and one THRESHOLD - 1."""
    cells = list(itertools.product(*[ATTRIBUTES[d] for d in dims]))
    rng.shuffle(cells)
    for target, size in zip(cells[:2], (THRESHOLD, THRESHOLD - 1)):
        members = [p for p in persons if tuple(p[d] for d in dims) == target]
        others = [p for p in persons if tuple(p[d] for d in dims) != target]
        while len(members) > size:
            p = members.pop()
            p.update(dict(zip(dims, cells[-1])))
        while len(members) < size and others:
            p = others.pop()
            p.update(dict(zip(dims, target)))
            members.append(p)


def table_of(persons: list[dict], dims: list[str], measure: str, margin: str | None = "All"):
    """A long table over `dims` with every margin (labelled `margin`: `All`, or NULL as SQL's
    CUBE writes it), its person sets and its evidence."""
    rows, sets = [], []
    for key in itertools.product(*[ATTRIBUTES[d] + [margin] for d in dims]):
        members = [p for p in persons if all(k == margin or p[d] == k for d, k in zip(dims, key))]
        value = (len(members) if measure == "n" else sum(p["value"] for p in members) if measure == "total_value"
                 else sum(p["value"] for p in members) / len(members) if members else None)
        rows.append(key + (value,))
        sets.append(frozenset(p["pid"] for p in members))
    table = pa.table({**{d: [r[i] for r in rows] for i, d in enumerate(dims)},
                      measure: [r[-1] for r in rows]})
    cells = {}
    for row, members in zip(rows, sets):
        values = sorted((p["value"] for p in persons if p["pid"] in members), reverse=True)
        cells[(label_key(row[:-1]), measure)] = CellEvidence(
            persons=len(members), total=None if measure == "n" else float(sum(values)),
            top=tuple(values[:3]) if measure != "n" else (),
            aggregate={"n": "count", "total_value": "sum"}.get(measure, "avg"),
            value=None if row[-1] is None else float(row[-1]), value_known=True, person_set=members)
    return table, Evidence(tuple(dims), cells), sets


def brute_force_fails(persons, sets, values, measure) -> set[int]:
    """Rows whose cell fails a primary rule, recomputed from the persons."""
    out = set()
    for row, members in enumerate(sets):
        if len(members) < THRESHOLD:
            out.add(row)
        if measure != "n" and members:
            contributions = sorted((p["value"] for p in persons if p["pid"] in members), reverse=True)
            total = sum(contributions)
            top2 = sum(contributions[:2])
            rest = total - top2
            if top2 / total >= 0.9 or rest / contributions[0] < 0.1:
                out.add(row)
    return out


CASES = [(seed, dims, measure, margin) for seed in range(6)
         for dims, measure in ((["region"], "n"), (["sex", "region"], "n"), (["sex", "region", "band"], "n"),
                               (["sex", "region"], "total_value"))
         for margin in (("All", None) if seed % 2 else ("All",))]


@pytest.mark.parametrize("seed, dims, measure, margin", CASES)
def test_verdicts_equal_brute_force_and_proposed_patterns_resist_the_lp_attack(seed, dims, measure, margin):
    rng = random.Random(seed)
    persons = make_persons(rng, rng.randint(150, 400))
    plant_boundary(rng, persons, dims)
    table, evidence, sets = table_of(persons, dims, measure, margin)
    kind = "frequency" if measure == "n" else "magnitude"
    verdicts = check_table(table, None, kind=kind, evidence=evidence)
    primary = {c.row for c in verdicts.cells if {"threshold", "zero", "dominance", "p_percent"} & set(c.rules)}
    truth_fails = brute_force_fails(persons, sets, table.column(measure).to_pylist(), measure)
    assert primary == truth_fails
    assert any(len(s) == THRESHOLD for s in sets) and any(len(s) == THRESHOLD - 1 for s in sets)
    if not truth_fails:
        assert verdicts.suppression is None
        return
    pattern = verdicts.suppression
    assert pattern is not None and pattern["verified"] is True, pattern
    suppressed = apply_pattern(table, pattern["cells"])
    assert {c["row"] for c in pattern["cells"]} >= truth_fails
    values = table.column(measure).to_pylist()
    keys = list(zip(*[suppressed.column(d).to_pylist() for d in dims]))
    for row, interval in lp_attack(suppressed.column(measure).to_pylist(), keys, margin).items():
        assert not exposed(interval, values[row], row in truth_fails, count=measure == "n", threshold=THRESHOLD), \
            (row, interval, values[row])
    # the checker agrees: nothing left to flag once applied
    again = check_table(suppressed, None, kind=kind, evidence=evidence)
    assert again.status in ("pass", "review"), again.to_dict()


@pytest.mark.parametrize("seed", range(5))
def test_differencing_verdicts_equal_the_person_level_attack(seed):
    rng = random.Random(100 + seed)
    persons = make_persons(rng, rng.randint(150, 300))
    released, _, released_sets = table_of(persons, ["region"], "n")
    # the new table: the same counts after a filter that drops a few persons of one region
    dropped = {p["pid"] for p in rng.sample([p for p in persons if p["region"] == "n"], rng.randint(1, 12))}
    kept = [p for p in persons if p["pid"] not in dropped]
    new, new_evidence, new_sets = table_of(kept, ["region"], "n")
    _, old_evidence, _ = table_of(persons, ["region"], "n")
    from egress.checks.differencing import Related

    verdicts = check_table(new, None, kind="frequency", evidence=new_evidence,
                           released=[Related(released, "r-1/t.parquet", "released", old_evidence)])
    flagged = {c.row for c in verdicts.cells if "differencing" in c.rules}
    published = [s for s, v in zip(released_sets, released.column("n").to_pylist()) if v is not None]
    assert flagged == differencing_attack(new_sets, published, THRESHOLD)
    assert bool(flagged) == (len(dropped) < THRESHOLD)


def test_value_level_differencing_sees_a_margin_of_a_released_table():
    released = pa.table({"sex": ["F", "M"], "n": [100, 90]})
    new = pa.table({"sex": ["F", "F", "M", "M"], "band": ["a", "b", "a", "b"], "n": [60, 37, 50, 40]})
    verdicts = check_table(new, None, kind="frequency", released=[released])
    assert verdicts.cells_with("differencing") == {(0, "n"), (1, "n")}  # F: 100 - 97 = 3 persons


@pytest.mark.parametrize("seed", range(4))
def test_means_with_margins_get_the_threshold_and_no_margin_equations(seed):
    """A mean's margin is not the sum of its cells: the threshold decides, and the suppression
    audit reads no equations from it (no "inconsistent margins" review)."""
    rng = random.Random(300 + seed)
    persons = make_persons(rng, rng.randint(150, 400))
    plant_boundary(rng, persons, ["sex", "region"])
    table, evidence, sets = table_of(persons, ["sex", "region"], "mean_value", rng.choice(["All", None]))
    verdicts = check_table(table, None, kind="magnitude", evidence=evidence)
    assert {c.row for c in verdicts.cells if "threshold" in c.rules} == {
        row for row, members in enumerate(sets) if len(members) < THRESHOLD}
    assert not verdicts.table, verdicts.to_dict()
    pattern = verdicts.suppression
    assert pattern is not None and {c["row"] for c in pattern["cells"]} == {
        row for row, members in enumerate(sets) if len(members) < THRESHOLD}
    again = check_table(apply_pattern(table, pattern["cells"]), None, kind="magnitude", evidence=evidence)
    assert again.status != "fail" and not again.table, again.to_dict()


@pytest.mark.parametrize("seed", range(20))
def test_person_sets_agree_with_python_sets(seed):
    """The hashed persons of a cell are kept as sorted arrays (`PersonSet`): subset, disjointness
    and size agree with Python's sets, including the unsigned 64-bit range of DuckDB's hash."""
    from egress.checks.evidence import PersonSet

    rng = random.Random(seed)
    universe = [rng.randrange(2 ** 64) for _ in range(60)]
    a = set(rng.sample(universe, rng.randint(0, 30)))
    b = set(rng.sample(universe, rng.randint(0, 30))) | (a if seed % 3 == 0 else set())
    for x, y in ((a, b), (b, a), (a, a)):
        assert (PersonSet(list(x)) <= PersonSet(list(y))) == (x <= y)
        assert PersonSet(list(x)).isdisjoint(PersonSet(list(y))) == x.isdisjoint(y)
        assert len(PersonSet(list(x) + list(x))) == len(x)
