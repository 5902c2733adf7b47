"""Fast readiness for a new workspace, shared by the Docker and Kubernetes permit spawners.

JupyterHub waits for a new server with an exponential backoff (0.2 s doubling to 5 s, random
jitter) that turns a server ready in 1 s into a 2-8 s spawn. `ReadinessMixin.wait_until_ready()`
probes `<url><base_url>api` every `ready_poll_interval_seconds` and returns as soon as it
answers (or when `http_timeout` passes, leaving the hub's own wait to report the timeout), so
the hub's first probe succeeds at once. Must not import egress, docker or kubernetes.
"""

from __future__ import annotations

import asyncio
import time

from jupyterhub.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, TraitError, validate
from traitlets.config import Configurable


class ReadinessMixin(Configurable):
    """Mixed into a JupyterHub Spawner subclass (which supplies server, user, name, http_timeout)."""

    ready_poll_interval_seconds = Float(
        0.1,
        help="""How often `start()` probes a new workspace until it answers (seconds). Small values make
        spawn-to-ready close to the server's own start time; each probe is one HTTP request.""",
    ).tag(config=True)

    @validate("ready_poll_interval_seconds")
    def _check_poll(self, proposal):
        if not 0.01 <= proposal.value <= 5:
            raise TraitError(f"ready_poll_interval_seconds must be between 0.01 and 5, not {proposal.value}")
        return proposal.value

    def _api_url(self, url: str) -> str:
        base = self.server.base_url if self.server else url_path_join("/user", self.user.name, self.name, "")
        return url_path_join(url, base, "api")

    async def answers(self, url: str, client: AsyncHTTPClient) -> bool:
        """One probe: does the server at `url` answer (any status below 500)?"""
        try:
            # a short connect timeout: a SYN lost while the pod network is set up is retried by
            # the next probe, not by the kernel a second later
            resp = await client.fetch(HTTPRequest(self._api_url(url), request_timeout=2, connect_timeout=0.5,
                                                  follow_redirects=False), raise_error=False)
        except (OSError, HTTPClientError):
            return False
        return bool(resp.code) and resp.code < 500 and resp.code != 599

    async def wait_until_ready(self, url: str) -> None:
        """Probe `<url><base_url>api` until it answers or `http_timeout` passes."""
        # our own client: the shared one has 10 slots, which the hub needs for its proxy calls
        client = AsyncHTTPClient(force_instance=True)
        deadline = time.monotonic() + self.http_timeout
        try:
            while not await self.answers(url, client):
                if time.monotonic() > deadline:
                    return  # the hub's own wait then reports the timeout and cleans up
                await asyncio.sleep(self.ready_poll_interval_seconds)
        finally:
            client.close()
