"""The public proxy when the supervisor (not the hub) runs it: `SupervisedProxy`.

JupyterHub checks the proxy's routes when it starts; a proxy it did not start itself may
restart later (a crash, `spe services restart proxy`) and come back with no routes at all.
This proxy class re-checks the routes every `route_check_seconds`, so that a restarted proxy
sends every running workspace to it again without a hub restart. Must not import `egress`.
"""

from __future__ import annotations

from jupyterhub.proxy import ConfigurableHTTPProxy
from tornado.ioloop import PeriodicCallback
from traitlets import Integer


class SupervisedProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy run by supervisord: never started or stopped by the hub."""

    route_check_seconds = Integer(5, help="""
        Seconds between two checks of the proxy's routes against the running servers (default 5):
        how long a restarted proxy can miss a workspace's route.""").tag(config=True)

    _route_check = None

    async def check_routes(self, user_dict, service_dict, routes=None):
        await super().check_routes(user_dict, service_dict, routes)
        if self._route_check is None and self.route_check_seconds > 0:
            self._route_check = PeriodicCallback(self._check_again, 1e3 * self.route_check_seconds)
            self._route_check.start()

    async def _check_again(self):
        try:
            await self.check_routes(self.app.users, self.app._service_map)
        except Exception as err:  # the proxy is restarting: the next round adds the routes
            self.log.warning("route check failed (%s); retrying in %s s", err, self.route_check_seconds)
