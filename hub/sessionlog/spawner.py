"""Spawner mixin that puts the session recorder between the hub and each workspace.

    class RecordedPermitSpawner(SessionRecordingMixin, PermitSpawner): pass
    c.JupyterHub.spawner_class = RecordedPermitSpawner
    c.SessionRecordingMixin.session_recorder_url = "http://127.0.0.1:8765"

After the wrapped spawner's `start()` returns the workspace address, the mixin registers it in
the recorder's routing table under the server's URL prefix and returns the recorder's address
instead, so the hub proxy sends all of the workspace's traffic through the recorder. `stop()`
removes the route. Needs `self.engine` (the registry engine) and `self.user`/`self.server`
from the JupyterHub spawner it is mixed into.
"""

from __future__ import annotations

from traitlets import Unicode, validate
from traitlets.config import LoggingConfigurable

from hub.sessionlog.routes import register_target, remove_target


class SessionRecordingMixin(LoggingConfigurable):
    session_recorder_url = Unicode(
        "",
        config=True,
        help="""Address (http://host:port) of the SPE session recorder on the hub host. Every
        workspace is reached through it, so code cells and terminal commands are recorded in the
        audit trail outside the researcher's control (EHDS Art. 73(1)(e)). Empty disables
        recording: only for development, never in production.""",
    )

    @validate("session_recorder_url")
    def _check_url(self, proposal):
        value = proposal["value"].rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"session_recorder_url must be http(s)://host:port, not {value!r}")
        return value

    def _recorded_permit_id(self) -> str | None:
        spec = getattr(self, "_spe_spec", None)
        return getattr(spec, "permit_id", None) or getattr(self, "name", None) or None

    async def start(self):
        url = await super().start()
        if not self.session_recorder_url:
            self.log.warning("session recording is disabled for %s", self.server.base_url)
            return url
        if isinstance(url, tuple):  # (ip, port) from the base spawner
            url = f"http://{url[0]}:{url[1]}"
        register_target(self.engine, self.server.base_url, url, self.user.name, self._recorded_permit_id())
        return self.session_recorder_url

    async def stop(self, now=False):
        try:
            if self.session_recorder_url:
                remove_target(self.engine, self.server.base_url)
        finally:
            await super().stop(now=now)
