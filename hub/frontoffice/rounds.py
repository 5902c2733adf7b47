"""The front office's share of each lifecycle round (`hub.lifecycle.run_once`): emit the due
deadline reminders (once each) and, once a day, meter every permit's storage. Must not import `egress`.
"""

from __future__ import annotations

import logging
from datetime import date

import sqlalchemy as sa

from hub.frontoffice.context import make_frontoffice
from hub.frontoffice.fees import metering
from hub.settings import Settings

log = logging.getLogger("spe.frontoffice")


class _NoDirectory:
    """Reminders and metering never look up accounts."""

    def exists(self, username: str) -> bool:  # pragma: no cover - never called in a round
        return False


def run_round(settings: Settings, engine: sa.Engine, today: date, docker_client=None, name_prefix: str = "spe") -> None:
    fo = make_frontoffice(engine, settings, _NoDirectory(), today=lambda: today)
    for r in fo.applications.send_reminders():
        log.info("%s %s (due %s)", r.application_id, r.action, r.due)
    if not metering.sampled_today(engine, today):
        n = metering.record_usage(engine, today, "system", docker_client, name_prefix)
        log.info("metered the storage of %d permit(s)", n)
