"""Circuit-breaker state of the endpoints a batch posts to, cached for ENDPOINT_TTL seconds.

An endpoint is one session row's use of one URL (issue 11, finding 15). Only a healthy
state (closed, no failure counted) is cached: any other is read again for every batch,
so a breaker that opens elsewhere is seen at once, while the common case (every endpoint
healthy) costs one query per second per dispatcher instead of one per batch.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from chalicelib.repositories.webhooks import WebhookRepository

ENDPOINT_TTL = 1.0

Endpoint = tuple[str, str]  # (session row id, URL)


class EndpointStates:
    def __init__(self, repo: WebhookRepository, lock: threading.Lock):
        self.repo = repo
        self._lock = lock
        self.cache: dict[Endpoint, tuple[float, dict[str, Any] | None]] = {}

    def states(self, endpoints: set[Endpoint]) -> dict[Endpoint, dict[str, Any] | None]:
        now = time.monotonic()
        states: dict[Endpoint, dict[str, Any] | None] = {}
        missing = []
        with self._lock:
            for endpoint in endpoints:
                cached = self.cache.get(endpoint)
                if cached and cached[0] > now:
                    states[endpoint] = cached[1]
                else:
                    missing.append(endpoint)
        if missing:
            rows = self.repo.endpoints(missing)
            with self._lock:
                for endpoint in missing:
                    row = states[endpoint] = rows.get(endpoint)
                    if row is None or (row["state"] == "closed" and not row["consecutive_failures"]):
                        self.cache[endpoint] = (now + ENDPOINT_TTL, row)
        return states

    def known_healthy(self, endpoint: Endpoint) -> bool:
        """True while a healthy state read for this endpoint is fresh (no reset needed)."""
        cached = self.cache.get(endpoint)
        return cached is not None and cached[0] > time.monotonic()

    def invalidate(self, endpoint: Endpoint) -> None:
        with self._lock:
            self.cache.pop(endpoint, None)
