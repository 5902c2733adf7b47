"""Pure parts of the workspace layer: firewall rules, lifecycle plan, passwords, audit of deletions."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from hub.exceptions import InvalidInput
from hub.hubapp.audit_log import parse_server_delete
from hub.hubapp.auth import check_password, hash_password, load_users, make_demo_users
from hub.lifecycle import Running, plan_round
from hub.netfw import FirewallPlan, make_firewall_rules, make_firewall_teardown, make_network_options
from hub.permits.model import Member, Permit


def plan(**kw):
    base = dict(bridge="spe-internal0", gateway_ip="172.18.0.1", allowed_tcp_ports=(8081, 8100))
    return FirewallPlan(**{**base, **kw})


def test_firewall_allows_only_hub_and_egress_ports_then_drops():
    rules = make_firewall_rules(plan())
    assert rules[0] == ["-N", "SPE-WORKSPACE"] and rules[1] == ["-F", "SPE-WORKSPACE"]
    accepts = [r for r in rules if r[-1] == "ACCEPT" and "--dport" in r]
    assert [(r[r.index("-d") + 1], r[r.index("--dport") + 1]) for r in accepts] == [
        ("172.18.0.1", "8081"), ("172.18.0.1", "8100")]
    chain_rules = [r for r in rules if r[:2] == ["-A", "SPE-WORKSPACE"]]
    assert chain_rules[-1] == ["-A", "SPE-WORKSPACE", "-j", "DROP"]  # default deny is last
    assert rules[-1] == ["-I", "INPUT", "1", "-i", "spe-internal0", "-j", "SPE-WORKSPACE"]
    assert make_firewall_teardown(plan())[0] == ["-D", "INPUT", "-i", "spe-internal0", "-j", "SPE-WORKSPACE"]


@pytest.mark.parametrize("kw", [
    {"bridge": "a-bridge-name-too-long"}, {"bridge": "br;rm -rf /"}, {"bridge": ""},
    {"gateway_ip": "172.18.0.1; iptables -F"}, {"gateway_ip": "::1"},
    {"allowed_tcp_ports": (0,)}, {"allowed_tcp_ports": (70000,)}, {"allowed_tcp_ports": ("80",)},
    {"chain": "-j ACCEPT"}, {"chain": "X" * 29}, {"drop_target": "ACCEPT"},
])
def test_firewall_plan_rejects_hostile_values(kw):
    with pytest.raises(InvalidInput):
        plan(**kw)


def test_network_is_internal_without_icc():
    opts = make_network_options("spe-internal0")
    assert opts["com.docker.network.bridge.enable_icc"] == "false"
    assert opts["com.docker.network.bridge.name"] == "spe-internal0"


def _permit(pid="P-1", status="active", until=date(2030, 1, 1), members=("alice",)):
    return Permit(id=pid, title="t", purpose="scientific_research", organisation="o", principal_investigator="alice",
                  members=tuple(Member(m, "researcher") for m in members), dataset="eunomia", tables={},
                  valid_from=date(2026, 1, 1), valid_until=until, status=status)


NOW = datetime(2027, 6, 1, tzinfo=timezone.utc)
TODAY = NOW.date()


@pytest.mark.parametrize("permit, user, stops", [
    (_permit(), "alice", False),
    (_permit(status="suspended"), "alice", True),
    (_permit(status="revoked"), "alice", True),
    (_permit(status="expired"), "alice", True),
    (_permit(until=date(2027, 5, 31)), "alice", True),  # past valid_until: expired and stopped
    (_permit(), "bob", True),  # removed from the permit
])
def test_lifecycle_stops_workspaces_of_closed_permits(permit, user, stops):
    p = plan_round([permit], {}, [Running(user, "p-1")], set(), TODAY, NOW, 30)
    assert bool(p.stop) == stops
    assert p.expire == (["P-1"] if permit.valid_until < TODAY and permit.status == "active" else [])


def test_lifecycle_stops_unknown_workspaces():
    p = plan_round([_permit()], {}, [Running("alice", "not-a-permit")], set(), TODAY, NOW, 30)
    assert p.stop[0][1] == ""


@pytest.mark.parametrize("pid", ["Awk.Case_2026.1", "HDAB.Long_Permit-2026." + "Xy_z." * 8 + "X"])
def test_lifecycle_finds_awkward_permits_by_their_server_name(pid):
    from hub.naming import server_name_for

    kept = plan_round([_permit(pid)], {}, [Running("alice", server_name_for(pid))], set(), TODAY, NOW, 30)
    assert kept.stop == []
    stopped = plan_round([_permit(pid, status="suspended")], {}, [Running("alice", server_name_for(pid))], set(),
                         TODAY, NOW, 30)
    assert [(pid_, "suspended" in reason) for _, pid_, reason in stopped.stop] == [(pid, True)]


@pytest.mark.parametrize("status, ended_days_ago, grace, deleted", [
    ("expired", 29, 30, False), ("expired", 30, 30, True), ("revoked", 200, 183, True),
    ("active", 400, 30, False), ("suspended", 400, 30, False), ("revoked", 0, 0, True),
])
def test_lifecycle_deletes_data_after_grace(status, ended_days_ago, grace, deleted):
    p = plan_round([_permit(status=status)], {"P-1": NOW - timedelta(days=ended_days_ago)}, [], {"P-1"},
                   TODAY, NOW, grace)
    assert (p.delete_data == ["P-1"]) == deleted


def test_passwords_are_hashed_and_checked(tmp_path):
    record = hash_password("s3cret")
    assert "s3cret" not in str(record) and check_password("s3cret", record) and not check_password("S3cret", record)
    clear = make_demo_users(tmp_path / "users.json", {"alice": "researchers", "olga": "operators"})
    stored = load_users(tmp_path / "users.json")
    assert set(stored) == {"alice", "olga"} and stored["olga"]["group"] == "operators"
    assert check_password(clear["alice"], stored["alice"]) and not check_password(clear["olga"], stored["alice"])
    assert clear["alice"] not in (tmp_path / "users.json").read_text()
    assert oct((tmp_path / "users.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("users", [{"Alice!": "researchers"}, {"alice": "admins"}])
def test_demo_users_reject_bad_names_and_groups(tmp_path, users):
    with pytest.raises(InvalidInput):
        make_demo_users(tmp_path / "u.json", users)


@pytest.mark.parametrize("method, path, hit", [
    ("DELETE", "/hub/api/users/alice/servers/demo-2026-001", ("alice", "demo-2026-001")),
    ("DELETE", "/hub/api/users/alice/server", ("alice", "")),
    ("POST", "/hub/api/users/alice/servers/demo-2026-001", None),
    ("DELETE", "/hub/api/users/alice/tokens/x", None),
])
def test_server_deletions_are_recognised(method, path, hit):
    assert parse_server_delete(method, path) == hit
