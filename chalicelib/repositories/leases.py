"""`shard_leases`: which runner consumes which command shard (runner_container/leases.py
decides; this is its SQL)."""
from __future__ import annotations

import math

from chalicelib.db import Database


class LeaseRepository:
    def __init__(self, db: Database):
        self.db = db

    def rebalance(self, runner_id: str, shards: int, ttl: float) -> set[int]:
        """Renew this runner's leases, give back what is beyond its fair share
        (ceil(shards / live runners)) and claim free or expired shards up to it, in one
        transaction. The shards it holds afterwards."""
        with self.db.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO shard_leases (shard) SELECT generate_series(0, %s - 1) ON CONFLICT DO NOTHING",
                         (shards,))
            held = {r["shard"] for r in conn.execute(
                """
                UPDATE shard_leases SET expires_at = now() + make_interval(secs => %s)
                WHERE runner_id = %s AND shard < %s RETURNING shard
                """, (ttl, runner_id, shards)).fetchall()}
            live = conn.execute(
                """
                SELECT count(*) AS n FROM runners
                WHERE stopped_at IS NULL AND heartbeat_at > now() - make_interval(secs => %s)
                """, (ttl,)).fetchone()["n"]
            fair = math.ceil(shards / max(1, live))
            if len(held) > fair:
                extra = sorted(held)[fair:]
                conn.execute("UPDATE shard_leases SET runner_id = NULL, expires_at = now() "
                             "WHERE shard = ANY(%s) AND runner_id = %s", (extra, runner_id))
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
                    """, (runner_id, ttl, shards, fair - len(held))).fetchall()
                held |= {r["shard"] for r in claimed}
        return held

    def release(self, runner_id: str, shards: list[int]) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE shard_leases SET runner_id = NULL, expires_at = now() "
                         "WHERE shard = ANY(%s) AND runner_id = %s", (shards, runner_id))
