"""How long a request has waited in the checker queue (egress.web.pages.waiting_for), at the unit boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from egress.web.pages import waiting_for

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("ago, expected", [
    (timedelta(0), (0, "min")),
    (timedelta(minutes=59, seconds=59), (59, "min")),
    (timedelta(minutes=60), (1, "h")),
    (timedelta(hours=23, minutes=59), (23, "h")),
    (timedelta(hours=24), (1, "d")),
    (timedelta(days=15, hours=3), (15, "d")),
    (-timedelta(minutes=5), (0, "min")),  # a clock ahead of ours: never negative
])
def test_waiting_for(ago, expected):
    assert waiting_for(NOW - ago, NOW) == expected
    assert waiting_for((NOW - ago).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), NOW) == expected  # as stored (utc_now_iso)
    assert waiting_for((NOW - ago).replace(tzinfo=None).isoformat(), NOW) == expected  # naive = UTC


def test_unreadable_time_is_zero_not_an_error():
    assert waiting_for("not a time", NOW) == (0, "min")
