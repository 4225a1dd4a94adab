"""Shard leases: which runner consumes which command shard.

Each tick a runner renews the leases it holds (expires_at = now + RUNNER_LEASE_TTL),
works out its fair share (ceil(shards / live runners)), gives back what it holds beyond
that share and claims free or expired shards up to it. A runner that dies stops renewing:
after the TTL its shards are expired and the others take them ("steal on expiry").
A graceful stop releases everything at once.
"""
from __future__ import annotations

import math

from chalicelib.db import Database


class LeaseManager:
    def __init__(self, db: Database, runner_id: str, shards: int, ttl: float):
        self.db = db
        self.runner_id = runner_id
        self.shards = shards
        self.ttl = ttl
        self.owned: set[int] = set()

    def tick(self) -> tuple[set[int], set[int]]:
        """Renew, rebalance, claim. Returns (gained, lost) since the last tick."""
        me, ttl, n = self.runner_id, self.ttl, self.shards
        with self.db.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO shard_leases (shard) SELECT generate_series(0, %s - 1) ON CONFLICT DO NOTHING",
                         (n,))
            held = {r["shard"] for r in conn.execute(
                """
                UPDATE shard_leases SET expires_at = now() + make_interval(secs => %s)
                WHERE runner_id = %s AND shard < %s RETURNING shard
                """, (ttl, me, n)).fetchall()}
            live = conn.execute(
                """
                SELECT count(*) AS n FROM runners
                WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => %s)
                """, (ttl,)).fetchone()["n"]
            fair = math.ceil(n / max(1, live))
            if len(held) > fair:
                extra = sorted(held)[fair:]
                conn.execute("UPDATE shard_leases SET runner_id = NULL, expires_at = now() "
                             "WHERE shard = ANY(%s) AND runner_id = %s", (extra, me))
                held -= set(extra)
            elif len(held) < fair:
                claimed = conn.execute(
                    """
                    UPDATE shard_leases SET runner_id = %s, expires_at = now() + make_interval(secs => %s),
                           acquired_at = now(), generation = generation + 1
                    WHERE shard IN (
                        SELECT shard FROM shard_leases
                        WHERE shard < %s AND (runner_id IS NULL OR expires_at < now())
                        ORDER BY shard LIMIT %s FOR UPDATE SKIP LOCKED)
                    RETURNING shard
                    """, (me, ttl, n, fair - len(held))).fetchall()
                held |= {r["shard"] for r in claimed}
        gained, lost = held - self.owned, self.owned - held
        self.owned = held
        return gained, lost

    def release(self, shards: set[int] | None = None) -> None:
        targets = sorted(self.owned if shards is None else shards)
        if targets:
            with self.db.connection() as conn:
                conn.execute("UPDATE shard_leases SET runner_id = NULL, expires_at = now() "
                             "WHERE shard = ANY(%s) AND runner_id = %s", (targets, self.runner_id))
        self.owned -= set(targets)
