"""The spawner mixin registers the workspace behind the recorder and removes it on stop."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from traitlets.config import LoggingConfigurable

from hub.sessionlog.routes import load_routes
from hub.sessionlog.spawner import SessionRecordingMixin


class EdgeSpawner(LoggingConfigurable):
    """Stands in for the JupyterHub spawner at the edge: a workspace at a fixed address."""

    def __init__(self, engine, **kw):
        super().__init__(**kw)
        self.engine = engine
        self.user = SimpleNamespace(name="alice")
        self.server = SimpleNamespace(base_url="/user/alice/P-1/")
        self.name = "P-1"
        self.stopped = False

    async def start(self):
        return ("10.1.2.3", 8888)

    async def stop(self, now=False):
        self.stopped = True


class Recorded(SessionRecordingMixin, EdgeSpawner):
    pass


async def test_start_routes_through_the_recorder_and_stop_removes_the_route(engine):
    sp = Recorded(engine, session_recorder_url="http://127.0.0.1:8765/")
    assert await sp.start() == "http://127.0.0.1:8765"
    (route,) = load_routes(engine)
    assert (route.prefix, route.target_url, route.user, route.permit_id) == \
        ("/user/alice/P-1/", "http://10.1.2.3:8888", "alice", "P-1")
    await sp.stop()
    assert sp.stopped and load_routes(engine) == []


def test_bad_recorder_url_is_refused(engine):
    with pytest.raises(Exception, match="session_recorder_url"):
        Recorded(engine, session_recorder_url="127.0.0.1:8765")
