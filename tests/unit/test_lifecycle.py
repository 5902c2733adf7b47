"""The permit lifecycle table: every (state, action) pair is either allowed or refused."""

import pytest

from hub.exceptions import Conflict
from hub.permits.lifecycle import ACTIONS, STATES, can_transition, check_transition

EXPECTED = {
    ("draft", "activate"): "active", ("draft", "expire"): "expired", ("draft", "revoke"): "revoked",
    ("active", "suspend"): "suspended", ("active", "expire"): "expired", ("active", "revoke"): "revoked",
    ("suspended", "activate"): "active", ("suspended", "expire"): "expired", ("suspended", "revoke"): "revoked",
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_transition(state, action):
    expected = EXPECTED.get((state, action))
    assert can_transition(state, action) == (expected is not None)
    if expected:
        assert check_transition(state, action) == expected
    else:
        with pytest.raises(Conflict):
            check_transition(state, action)


def test_store_transitions_write_one_audit_event_each(engine, eunomia):
    import sqlalchemy as sa

    from hub.audit.tables import audit_events
    from hub.permits.store import PermitStore
    from tests.conftest import EXAMPLES

    store = PermitStore(engine)
    store.apply_file(EXAMPLES / "demo-gibleed.yaml", "op")
    store.transition("DEMO-2026-001", "suspend", "op")
    store.transition("DEMO-2026-001", "activate", "op")
    with pytest.raises(Conflict):
        store.transition("DEMO-2026-001", "activate", "op")
    store.transition("DEMO-2026-001", "revoke", "op")
    with engine.connect() as conn:
        actions = [r[0] for r in conn.execute(sa.select(audit_events.c.action)
                                              .where(audit_events.c.permit_id == "DEMO-2026-001")
                                              .order_by(audit_events.c.seq))]
    assert actions == ["permit.create", "permit.activate", "permit.suspend", "permit.activate", "permit.revoke"]
    assert store.get("DEMO-2026-001").status == "revoked"
