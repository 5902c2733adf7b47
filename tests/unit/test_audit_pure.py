"""Pure audit logic: canonical content, damage classification, event registry, session
protocol parsing, terminal command assembly, routing, metrics fold."""

from __future__ import annotations

import json

import pytest

from hub.audit.chain import GENESIS, FIELDS, content_hash_values, event_hash, find_damage
from hub.audit.events import EVENT_TYPES, event_type, missing_keys
from egress.metrics import DpGroup, EgressGroup
from hub.metrics import Fold, WorkspaceGroup
from hub.sessionlog.protocol import V1_PROTOCOL, CommandAssembler, parse_kernel_frame, parse_terminal_frame
from hub.sessionlog.routes import Route, check_route, match
from hub.exceptions import InvalidInput


def _chain(n):
    prev, out = GENESIS, []
    for i in range(1, n + 1):
        ev = {"seq": i, "schema_version": 2, "ts": f"t{i}", "actor": "a", "role": None, "action": "x",
              "permit_id": None, "object_id": None, "outcome": "ok", "detail": None}
        ev["prev_hash"], ev["hash"] = prev, event_hash(prev, ev)
        prev = ev["hash"]
        out.append(ev)
    return out


@pytest.mark.parametrize("a, b", [
    ((1, "t", "ab", None), (1, "t", "a", "b")),       # moving characters between fields
    ((1, "t", None, "x"), (1, "t", "", "x")),         # NULL differs from empty
    ((1, "t", "a", "b"), (1, "t", "a", "b ")),
])
def test_content_hash_separates_fields(a, b):
    assert content_hash_values(a) != content_hash_values(b)


@pytest.mark.parametrize("mutate, kind, seq", [
    (lambda c: c[3].update(actor="m"), "edited", 4),
    (lambda c: c.pop(3), "deleted", 4),
    (lambda c: c.__setitem__(slice(3, 5), [c[4], c[3]]), "reordered", 5),  # event 5 now comes first
    (lambda c: c.__delitem__(slice(7, None)), "truncated", 8),
])
def test_find_damage_table(mutate, kind, seq):
    chain = _chain(10)
    head = (10, chain[-1]["hash"])
    mutate(chain)
    d = find_damage(chain, head=head)
    assert (d.kind, d.seq) == (kind, seq)


def test_intact_chain_and_checkpoint_mismatch():
    chain = _chain(5)
    assert find_damage(chain, head=(5, chain[-1]["hash"])) is None
    d = find_damage(chain, head=(5, chain[-1]["hash"]), checkpoints={3: "f" * 64})
    assert (d.kind, d.seq) == ("rewritten", 3)


@pytest.mark.parametrize("action, detail, missing", [
    ("session.cell", {"kernel_id": "k", "code": "1"}, ["code_bytes"]),
    ("permit.activate", {"from": "draft", "to": "active", "reason": ""}, []),
    ("egress.release", {"from": "approved"}, ["to"]),
    ("cli.permit.apply", None, []),            # the operator CLI family
    ("not.registered", None, []),              # unknown actions are recorded (with a warning)
])
def test_required_detail_keys(action, detail, missing):
    assert missing_keys(action, detail) == missing


def test_every_event_type_is_documented():
    for t in EVENT_TYPES.values():
        assert t.description and t.category and t.version >= 1
    assert event_type("cli.audit.verify").action == "cli.*"


def _v1(channel, header, parent, content):
    parts = [channel.encode()] + [json.dumps(x).encode() for x in (header, parent, {}, content)]
    n = len(parts) + 1
    offsets = [8 * (n + 1)]
    for p in parts:
        offsets.append(offsets[-1] + len(p))
    return b"".join([n.to_bytes(8, "little")] + [o.to_bytes(8, "little") for o in offsets] + parts)


def test_kernel_frames_json_and_v1():
    header = {"msg_type": "execute_request", "msg_id": "m1", "session": "s"}
    j = parse_kernel_frame(json.dumps({"channel": "shell", "header": header, "parent_header": {},
                                       "content": {"code": "x"}}), None)
    b = parse_kernel_frame(_v1("shell", header, {}, {"code": "x"}), V1_PROTOCOL)
    for m in (j, b):
        assert (m.channel, m.msg_type, m.msg_id, m.content["code"]) == ("shell", "execute_request", "m1", "x")


@pytest.mark.parametrize("frame, proto", [
    (b"", V1_PROTOCOL), (b"\xff" * 7, V1_PROTOCOL), ((10 ** 6).to_bytes(8, "little"), V1_PROTOCOL),
    ((5).to_bytes(8, "little") + b"\0" * 48, V1_PROTOCOL),  # offsets pointing inside the table
    ("{not json", None), ("[1, 2]", None), (b"\xff\xfe", None), ('{"header": "x"}', None),
])
def test_hostile_kernel_frames_are_none(frame, proto):
    assert parse_kernel_frame(frame, proto) is None


@pytest.mark.parametrize("keys, commands, rest", [
    (["ls -l\r"], ["ls -l"], None),
    (["ech", "o hi\r"], ["echo hi"], None),
    (["lx\x7fs\r"], ["ls"], None),
    (["rm -rf /\x03"], ["rm -rf / ^C"], None),
    (["cat sec", "ret"], [], "cat secret"),
    (["\x1b[A\r"], ["^[[A"], None),
    (["a\nb\r"], ["a", "b"], None),
])
def test_command_assembler(keys, commands, rest):
    asm = CommandAssembler()
    got = []
    for k in keys:
        got += asm.feed(k)
    assert got == commands and asm.flush() == rest


def test_terminal_frames():
    assert parse_terminal_frame('["stdin", "ls\\r"]') == ("stdin", "ls\r")
    assert parse_terminal_frame('{"a": 1}') is None and parse_terminal_frame("nope") is None


def test_routes_longest_prefix_and_validation():
    routes = [Route("/user/a/", "http://h:1", "a", None), Route("/user/a/P-1/", "http://h:2", "a", "P-1")]
    assert match(routes, "/user/a/P-1/api/kernels").target_url == "http://h:2"
    assert match(routes, "/user/a/other").target_url == "http://h:1"
    assert match(routes, "/user/ab/") is None
    with pytest.raises(InvalidInput, match="prefix"):
        check_route("user/a/", "http://h:1")
    with pytest.raises(InvalidInput, match="target_url"):
        check_route("/user/a/", "file:///etc/passwd")
    with pytest.raises(InvalidInput, match="target_url"):
        check_route("/user/a/", "http://h:1/path")


def test_metrics_fold_keeps_names_out_of_its_outputs():
    workspace, egress, dp = WorkspaceGroup(), EgressGroup(), DpGroup()
    f = Fold([workspace, egress, dp])
    ev = lambda seq, action, **kw: {"seq": seq, "ts": f"2026-01-01T00:00:{seq:02d}.000000Z", "actor": "alice",
                                    "action": action, "outcome": "ok", "permit_id": "P", "object_id": "r",
                                    "detail": json.dumps(kw)}
    f.apply(ev(1, "workspace.spawn", server="s", ready_seconds=2.0))
    f.apply(ev(2, "egress.submit", **{"from": "draft", "to": "submitted"}))
    f.apply(ev(3, "egress.reject", **{"from": "in_review", "to": "rejected"}))
    f.apply(ev(4, "dp.charge", epsilon=0.5))
    f.apply(ev(5, "permit.create", version=1, sha256="x"))  # folded by none of these groups
    assert list(workspace.active.values()) == ["P"] and workspace.spawn.counts[1] == 1
    assert egress.requests["r"][0] == "rejected" and egress.decision.total == pytest.approx(1.0)
    assert dp.spent == {"P": 0.5} and f.last_seq == 5
    assert "permit.create" not in f.actions and {"kube.networkpolicy_check", "egress.release", "dp.charge"} <= set(f.actions)
