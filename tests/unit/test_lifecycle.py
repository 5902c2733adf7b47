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


def test_a_permit_that_would_share_another_permits_workspace_is_refused(engine, eunomia):
    import yaml

    from hub.permits.store import PermitStore
    from tests.conftest import EXAMPLES

    store = PermitStore(engine)
    doc = yaml.safe_load((EXAMPLES / "demo-gibleed.yaml").read_text())
    store.apply(dict(doc, id="Demo.2026_001"), "op")
    for clash in ("DEMO-2026-001", "demo.2026.001", "DEMO_2026_001"):  # all open as demo-2026-001
        with pytest.raises(Conflict, match="would open as workspace 'demo-2026-001'"):
            store.apply(dict(doc, id=clash), "op")
    assert [p.id for p in store.list()] == ["Demo.2026_001"]
    assert store.apply(dict(doc, id="Demo.2026_001", title="A changed title"), "op")[1] == "updated"
    assert store.apply(dict(doc, id="DEMO-2026-0001"), "op")[1] == "created"  # a different name
