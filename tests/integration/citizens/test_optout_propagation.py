"""A citizen's opt-out reaches live permits: real Eunomia, real DuckDB provisioning, real registry.

The per-person check (hub.citizens.membership) is the proof: after propagation the person is absent
from every current extract and no version on disk holds them; the extract files agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from hub.citizens import optout as citizen_optout
from hub.citizens.identity import citizen_hash, link, id_hash_of
from hub.citizens.membership import check_person
from hub.citizens.usage import permits_that_used
from hub.datasets.example import eunomia_path
from hub.exceptions import Conflict, InvalidInput, NotFound
from hub.permits.store import PermitStore
from hub.provision.extracts import current_extract
from hub.provision.keys import KeyStore
from hub.provision.run import provision
from tests.conftest import EXAMPLES

P1, P2 = "DEMO-2026-001", "DEMO-2026-002"


def eunomia_person(sql_where: str) -> tuple[int, str]:
    con = duckdb.connect(str(eunomia_path()), read_only=True)
    try:
        return con.execute(f"SELECT person_id, person_source_value FROM person WHERE {sql_where} "
                           f"ORDER BY person_id LIMIT 1").fetchone()
    finally:
        con.close()


def persons_in(path: Path) -> int:
    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{path / 'person.parquet'}')").fetchone()[0]


@pytest.fixture
def provisioned(settings, engine, eunomia):
    store = PermitStore(engine)
    for doc in ("demo-gibleed.yaml", "demo-second.yaml"):
        store.apply_file(EXAMPLES / doc, "tester")
    for pid in (P1, P2):
        provision(engine, settings, pid, "tester")
    return store


def test_opt_out_propagates_removes_the_person_and_deletes_old_versions(settings, engine, provisioned):
    # an adult (in both demo permits' cohorts)
    _, national_id = eunomia_person("year_of_birth BETWEEN 1940 AND 1990")
    h = citizen_hash(KeyStore(settings.keys_dir), national_id)
    link(engine, "cora", h)
    assert id_hash_of(engine, "cora") == h
    before = {r["permit_id"]: r for r in check_person(engine, h)}
    assert before[P1]["in_current"] and before[P2]["in_current"]
    assert {p["id"] for p in permits_that_used(engine, h)} == {P1, P2}
    old_dir = Path(current_extract(engine, P1)["path"])
    old_count = persons_in(old_dir)

    now = datetime.now(timezone.utc)
    result = citizen_optout.opt_out(engine, h, "cora", delay_days=7, now=now)
    assert result["permits_scheduled"] == 2
    assert citizen_optout.status(engine, h)["opted_out"]
    # not due yet: nothing is re-provisioned
    assert citizen_optout.propagate_due(engine, settings, now=now + timedelta(days=6)) == []
    assert check_person(engine, h)[0]["in_current"]

    done = citizen_optout.propagate_due(engine, settings, now=now + timedelta(days=7, seconds=1))
    assert sorted(d["permit_id"] for d in done) == [P1, P2]
    assert all(d["removed_versions"] == [1] for d in done)
    after = check_person(engine, h)
    assert after and all(not r["in_current"] and r["versions_on_disk_holding"] == [] for r in after)
    new_dir = Path(current_extract(engine, P1)["path"])
    assert new_dir != old_dir and not old_dir.exists()
    assert persons_in(new_dir) == old_count - 1
    assert citizen_optout.pending(engine) == []
    # "who used my data" keeps the history: both permits used the person's data before the opt-out
    assert {p["id"] for p in permits_that_used(engine, h)} == {P1, P2}


def test_second_opt_out_is_refused_and_withdrawal_restores(settings, engine, provisioned):
    _, national_id = eunomia_person("year_of_birth BETWEEN 1940 AND 1990")
    h = citizen_hash(KeyStore(settings.keys_dir), national_id)
    citizen_optout.opt_out(engine, h, "cora")
    with pytest.raises(Conflict, match="already opted out"):
        citizen_optout.opt_out(engine, h, "cora")
    from hub.registry_tables import optouts
    import sqlalchemy as sa
    from hub.audit.tables import audit_events
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(optouts)).scalar() == 1
        refused = conn.execute(sa.select(sa.func.count()).select_from(audit_events).where(
            audit_events.c.action == "optout.citizen", audit_events.c.outcome == "refused")).scalar()
    assert refused == 1
    citizen_optout.withdraw(engine, h, "cora")
    assert not citizen_optout.status(engine, h)["opted_out"]
    with pytest.raises(NotFound, match="nothing to withdraw"):
        citizen_optout.withdraw(engine, h, "cora")
    # a new provisioning includes the person again
    provision(engine, settings, P1, "tester")
    assert next(r for r in check_person(engine, h) if r["permit_id"] == P1)["in_current"]


def test_a_person_outside_a_cohort_is_not_listed(settings, engine, provisioned):
    # born in 1908: 111 at 2019-01-01, above both demo cohorts' age band (18-110)
    row = eunomia_person("year_of_birth < 1909")
    h = citizen_hash(KeyStore(settings.keys_dir), row[1])
    assert permits_that_used(engine, h) == []
    assert all(not r["in_current"] for r in check_person(engine, h))


@pytest.mark.parametrize("bad", ["", "  ", "a", "x" * 65, "no spaces allowed", None, 12345])
def test_malformed_national_identifiers_are_refused(settings, bad):
    with pytest.raises(InvalidInput, match="national identifier"):
        citizen_hash(KeyStore(settings.keys_dir), bad)


def test_imported_opt_out_reaches_live_permits_through_the_cli(settings, engine, provisioned, spe, tmp_path,
                                                               monkeypatch):
    import io

    _, national_id = eunomia_person("year_of_birth BETWEEN 1940 AND 1990")
    register = tmp_path / "national-register.txt"
    register.write_text(f"national_id\n{national_id}\n")
    assert spe("optout", "import", str(register))[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(national_id + "\n"))
    code, out, _ = spe("optout", "check")
    assert code == 1 and P1 in out  # still in the current extracts: the check fails
    code, out, _ = spe("optout", "propagate", "--all-now")
    assert code == 0 and "2 permit(s) re-provisioned; 0 pending" in out, out
    monkeypatch.setattr("sys.stdin", io.StringIO(national_id + "\n"))
    code, out, _ = spe("optout", "check", "--json")
    assert code == 0, out
    import json
    assert {r["permit_id"] for r in json.loads(out)} == {P1, P2}
    # a malformed identifier on stdin: one clear line, exit code of a refusal
    monkeypatch.setattr("sys.stdin", io.StringIO("no spaces allowed\n"))
    code, _, err = spe("optout", "check")
    assert code != 0 and "national identifier is malformed" in err
