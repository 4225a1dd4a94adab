"""Per-key request limits (`API_RATE_LIMIT`, `API_ADMIN_RATE_LIMIT`), across every API instance.

Each key has a token bucket in PostgreSQL (`chalicelib/repositories/rate_limits.py`), so
the limit holds however many Lambda instances serve the key. Buckets are named by the
key's identity, never by the key: `api:session:<sessions.id>` (the row id: a session
deleted and re-created under the same session_id starts with a fresh bucket, as its key
is new) and `api:admin`. The `api:` prefix keeps them apart from `contacts_check:<id>`.

The charge commits asynchronously (no WAL flush: a crash may forget a fraction of a
second of charges). A session key is looked up and charged in one statement, the lookup
authentication needs anyway (`find_session_by_digest`, given to `AuthService`): the limit
adds no round trip to a session key's request. The admin key needs no lookup; its charge
is a round trip of its own, and a refusal is remembered in this process until its
Retry-After, so an admin key flooding one instance is refused without the database. That
local answer is conservative (Retry-After is rounded up to whole seconds), never generous.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from chalicelib.errors import RateLimited
from chalicelib.repositories.rate_limits import Charge, RateLimitRepository
from chalicelib.services.auth import Principal

MAX_REMEMBERED_REFUSALS = 10_000  # keys refused at once on one instance; beyond, the table is cleared


def bucket_for(principal: Principal) -> str:
    if principal.is_admin:
        return "api:admin"
    return f"api:session:{principal.session_uid}"


def charge_headers(charge: Charge) -> dict[str, str]:
    """The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers), on every answer."""
    return {
        "RateLimit-Limit": str(charge.limit),
        "RateLimit-Remaining": str(charge.remaining),
        "RateLimit-Reset": str(charge.reset_seconds),
        "RateLimit-Policy": f"{charge.limit};w={math.ceil(charge.period)}",
    }


class ApiRateLimiter:
    def __init__(self, repo: RateLimitRepository, *, session_limit: tuple[int, float] | None,
                 admin_limit: tuple[int, float] | None,
                 find_by_key_digest: Callable[[str], dict[str, Any] | None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.repo = repo
        self._find_by_key_digest = find_by_key_digest  # the plain lookup, when session keys are not limited
        self.session_limit = session_limit
        self.admin_limit = admin_limit
        self._clock = clock
        self._refused: dict[str, float] = {}  # bucket -> clock() before which it is still empty
        self._lock = threading.Lock()

    def find_session_by_digest(self, digest: str) -> dict[str, Any] | None:
        """Authentication's lookup of a session key; with a session limit, the row carries
        this request's `charge` too (made in the same statement)."""
        if self.session_limit is None:
            assert self._find_by_key_digest is not None
            return self._find_by_key_digest(digest)
        capacity, period = self.session_limit
        row, charge = self.repo.find_session_key_and_take(digest, 1, capacity=capacity, period=period)
        return None if row is None else {**row, "charge": charge}

    def headers_for(self, principal: Principal) -> dict[str, str]:
        """Charge one request; the RateLimit-* fields for the answer ({} when not limited)."""
        charge = self.charge(principal)
        return {} if charge is None else charge_headers(charge)

    def charge(self, principal: Principal) -> Charge | None:
        """One request's token, or None when the key's kind is not limited (`off`).
        Raises `RateLimited` (429 `rate_limited`, Retry-After and RateLimit-* headers)."""
        limit = self.admin_limit if principal.is_admin else self.session_limit
        if limit is None:
            return None
        if principal.charge is not None:  # made by the key's lookup
            if not principal.charge.granted:
                self._refuse(principal.charge)
            return principal.charge
        capacity, period = limit
        bucket = bucket_for(principal)
        now = self._clock()
        with self._lock:
            until = self._refused.get(bucket)
        if until is not None and now < until:
            wait = max(1, math.ceil(until - now))
            self._refuse(Charge(granted=False, remaining=0, retry_after=wait,
                                reset_seconds=math.ceil(period), limit=capacity, period=period))
        charge = self.repo.take(bucket, 1, capacity=capacity, period=period, durable=False)
        if not charge.granted:
            with self._lock:
                if len(self._refused) >= MAX_REMEMBERED_REFUSALS:
                    self._refused.clear()
                self._refused[bucket] = now + charge.retry_after
            self._refuse(charge)
        return charge

    @staticmethod
    def _refuse(charge: Charge) -> None:
        raise RateLimited(f"too many requests for this API key: {charge.limit} per {charge.period:g}s; "
                          f"retry in {charge.retry_after}s", retry_after=charge.retry_after,
                          headers=charge_headers(charge))
