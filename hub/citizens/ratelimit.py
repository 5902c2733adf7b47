"""A per-key sliding-window rate limit (pure: the caller passes the clock)."""

from __future__ import annotations

from collections import deque


class RateLimit:
    def __init__(self, limit: int, window_seconds: float):
        self.limit, self.window = limit, window_seconds
        self._seen: dict[str, deque] = {}

    def allow(self, key: str, now: float) -> bool:
        q = self._seen.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True
