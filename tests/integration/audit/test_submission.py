"""Signed event submission over HTTP: forged, replayed and out-of-order envelopes are refused
and change nothing; a valid sequence is appended to the chain."""

from __future__ import annotations

import json

import requests

from hub.audit import verify
from hub.audit.submit import sign_envelope, submission_handlers
from tests.integration.tornado_thread import TornadoThread

from .helpers import rows

SECRET = b"s" * 32
EVENT = {"actor": "agent", "action": "session.cell", "permit_id": "P-1",
         "detail": {"kernel_id": "k", "code": "1 + 1", "code_bytes": 5}}


def test_forged_replayed_and_out_of_order_submissions_are_refused(audit_engine):
    with TornadoThread(submission_handlers("/x", audit_engine, {"ws-agent": SECRET})) as srv:
        def post(body):
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            return requests.post(srv.url + "/x/audit/submit", data=data, timeout=10)

        first = sign_envelope(SECRET, source="ws-agent", seq=1, event=EVENT)
        assert post(first).json() == {"seq": 1}

        forged = sign_envelope(b"x" * 32, source="ws-agent", seq=2, event=EVENT)
        tampered = sign_envelope(SECRET, source="ws-agent", seq=2, event=EVENT)
        tampered["event"] = {**EVENT, "actor": "someone-else"}
        unknown = sign_envelope(SECRET, source="other", seq=1, event=EVENT)
        replay = first
        old_seq = sign_envelope(SECRET, source="ws-agent", seq=1, event=EVENT)  # fresh nonce, old sequence
        gap = sign_envelope(SECRET, source="ws-agent", seq=3, event=EVENT)
        bad_event = sign_envelope(SECRET, source="ws-agent", seq=2, event={"actor": "a", "action": "session.cell"})
        cases = [(forged, 403, "signature"), (tampered, 403, "signature"), (unknown, 403, "signature"),
                 (replay, 400, "replayed"), (old_seq, 400, "replayed"), (gap, 400, "out of order"),
                 (bad_event, 400, "code_bytes"), ("not json", 400, "not JSON"),
                 ({"source": "ws-agent"}, 400, "exactly")]
        for body, status, reason in cases:
            r = post(body)
            assert r.status_code == status, (reason, r.text)
            assert reason in r.json()["error"]
        assert [r["seq"] for r in rows(audit_engine)] == [1]

        second = sign_envelope(SECRET, source="ws-agent", seq=2, event=EVENT)
        assert post(second).json() == {"seq": 2}
    stored = rows(audit_engine)
    assert json.loads(stored[1]["detail"])["submitted_by"] == "ws-agent"
    assert verify(audit_engine).ok
