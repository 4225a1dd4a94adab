"""Token buckets in PostgreSQL, for limits that must hold across every API instance.

A bucket holds up to `capacity` tokens and refills continuously at `capacity / period`
tokens a second. `take(bucket, cost)` refills from the time elapsed since the last
charge and, if enough tokens are there, spends `cost` of them: all in one INSERT ... ON
CONFLICT DO UPDATE, so concurrent callers serialise on the row lock and each sees what
the previous one left (PostgreSQL re-evaluates the SET on the updated row). A refused
charge spends nothing. A new bucket starts full.

`take(..., durable=False)` commits without waiting for the WAL flush (`synchronous_commit
= off` for that one transaction, set inside the statement so it costs no round trip): a
database crash may then forget the last fraction of a second of charges, which for a
per-request limit only means a few requests more, while the flush would triple what the
limit adds to every request (measured: 0.35 ms durable, 0.14 ms without; see
`bench/api_latency.py`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from chalicelib.db import Database

_REFILLED = ("least(%(capacity)s::float8, r.tokens + %(rate)s::float8 * "
             "greatest(0, extract(epoch FROM now() - r.updated_at)))")
_TAKE = f"""
INSERT INTO rate_limits AS r (bucket, tokens, granted, updated_at)
VALUES (%(bucket)s,
        CASE WHEN %(cost)s::float8 <= %(capacity)s THEN %(capacity)s::float8 - %(cost)s ELSE %(capacity)s END,
        %(cost)s::float8 <= %(capacity)s, now())
ON CONFLICT (bucket) DO UPDATE SET
    granted = {_REFILLED} >= %(cost)s::float8,
    tokens = CASE WHEN {_REFILLED} >= %(cost)s::float8 THEN {_REFILLED} - %(cost)s ELSE {_REFILLED} END,
    updated_at = greatest(r.updated_at, now())
RETURNING tokens, granted
"""
# the same charge, its transaction committed asynchronously (see the module docstring)
_TAKE_ASYNC = ("WITH async_commit AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))\n"
               + _TAKE.replace("VALUES (%(bucket)s,", "SELECT %(bucket)s,", 1)
                      .replace("now())\nON CONFLICT", "now() FROM async_commit\nON CONFLICT", 1))
assert _TAKE_ASYNC.count("async_commit") == 2
# a session key's lookup (authentication) and its request's charge in one statement, one
# round trip: the bucket is named by the row the digest finds (`api:session:<sessions.id>`)
_FIND_SESSION_KEY_AND_TAKE = (
    "WITH async_commit AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)),\n"
    "     found AS (SELECT id, session_id, api_key_hash FROM sessions WHERE api_key_hash = %(digest)s),\n"
    "     charged AS (\n"
    + _TAKE.replace("VALUES (%(bucket)s,", "SELECT 'api:session:' || found.id,", 1)
           .replace("now())\nON CONFLICT", "now() FROM found, async_commit\nON CONFLICT", 1)
    + ")\nSELECT found.id, found.session_id, found.api_key_hash, charged.tokens, charged.granted\n"
      "FROM found LEFT JOIN charged ON true")


@dataclass(frozen=True)
class Charge:
    granted: bool
    remaining: int  # whole tokens left after this charge
    retry_after: int  # seconds until `cost` tokens are there (0 when granted)
    reset_seconds: int  # seconds until the bucket is full again
    limit: int
    period: float


class RateLimitRepository:
    def __init__(self, db: Database):
        self.db = db

    def take(self, bucket: str, cost: int, *, capacity: int, period: float, durable: bool = True) -> Charge:
        rate = capacity / period
        with self.db.connection() as conn:
            row = conn.execute(_TAKE if durable else _TAKE_ASYNC, {"bucket": bucket, "cost": cost, "capacity": capacity,
                                       "rate": rate}).fetchone()
        return charge_from(row["tokens"], row["granted"], cost, capacity=capacity, period=period)

    def find_session_key_and_take(self, digest: str, cost: int, *, capacity: int,
                                  period: float) -> tuple[dict | None, Charge | None]:
        """The session row whose key digest this is (None: unknown key, nothing charged) and
        the charge of its `api:session:<id>` bucket, committed asynchronously, in one round trip."""
        with self.db.connection() as conn:
            row = conn.execute(_FIND_SESSION_KEY_AND_TAKE, {"digest": digest, "cost": cost, "capacity": capacity,
                                                            "rate": capacity / period}).fetchone()
        if row is None:
            return None, None
        charge = charge_from(row["tokens"], row["granted"], cost, capacity=capacity, period=period)
        return {"id": row["id"], "session_id": row["session_id"], "api_key_hash": row["api_key_hash"]}, charge

    def reset(self, bucket: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM rate_limits WHERE bucket = %s", (bucket,))


def charge_from(tokens: float, granted: bool, cost: int, *, capacity: int, period: float) -> Charge:
    rate = capacity / period
    missing = 0.0 if granted else cost - tokens
    # a hair under an integer (float arithmetic) must not become one second more
    retry = 0 if granted else max(1, math.ceil(round(missing / rate, 6)))
    if cost > capacity:
        retry = math.ceil(period)
    return Charge(granted=granted, remaining=max(0, math.floor(round(tokens, 6))), retry_after=retry,
                  reset_seconds=max(0, math.ceil(round((capacity - tokens) / rate, 6))), limit=capacity,
                  period=period)
