"""Build the front office's services from `Settings` (the one place that wires them together).

Used by the `spe` commands and by the web handlers; `users` is the directory of accounts (the
hub's, or the demo users file). Must not import `egress`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from hub.frontoffice.applications.service import Applications
from hub.frontoffice.catalogue.store import Catalogue
from hub.frontoffice.config import load_hdab_config
from hub.frontoffice.fees.schedule import Schedule, load_schedule
from hub.settings import Settings


@dataclass
class FrontOffice:
    settings: Settings
    engine: sa.Engine
    config: dict
    schedule: Schedule
    catalogue: Catalogue
    applications: Applications

    def holders(self) -> dict[str, str]:
        """dataset -> its data holder's catalogue id."""
        return {e["dataset"]: e["holder"]["id"] for e in self.catalogue.entries()}


def make_frontoffice(engine: sa.Engine, settings: Settings, users, today=None) -> FrontOffice:
    from datetime import date

    config = load_hdab_config(settings)
    schedule = load_schedule(settings)
    catalogue = Catalogue(engine, config)

    def provision_now(permit_id: str, actor: str) -> None:
        from hub.provision.run import provision

        provision(engine, settings, permit_id, actor)

    apps = Applications(engine, config=config, schedule=schedule, catalogue=catalogue, users=users,
                        provision=provision_now if config["provisioning"] == "local" else None,
                        today=today or date.today)
    return FrontOffice(settings, engine, config, schedule, catalogue, apps)
