"""`shard_leases`: which runner consumes which command shard (runner_container/leases.py
decides; this is its SQL).

A lease may be taken when it is free, expired, or held by a runner whose lifeline lock
is gone (`runners.lifeline_cut_sql`): so a killed runner's shards move at the next tick
of another runner, a frozen one's (its connection and lock still there) only once its
lease has expired. The fair share counts the runners alive by `runner_alive_sql`."""
from __future__ import annotations

import math

from chalicelib.db import Database
from chalicelib.repositories.runners import lifeline_cut_sql, runner_alive_sql


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
            live = conn.execute(f"SELECT count(*) AS n FROM runners r WHERE {runner_alive_sql('r', '%s')}",
                                (ttl,)).fetchone()["n"]
            fair = math.ceil(shards / max(1, live))
            if len(held) > fair:
                extra = sorted(held)[fair:]
                conn.execute("UPDATE shard_leases SET runner_id = NULL, expires_at = now() "
                             "WHERE shard = ANY(%s) AND runner_id = %s", (extra, runner_id))
                held -= set(extra)
            elif len(held) < fair:
                claimed = conn.execute(
                    f"""
                    UPDATE shard_leases SET runner_id = %(me)s, expires_at = now() + make_interval(secs => %(ttl)s),
                           acquired_at = now(), generation = generation + 1
                    WHERE shard IN (
                        SELECT l.shard FROM shard_leases l
                        WHERE l.shard < %(shards)s AND (l.runner_id IS NULL OR l.expires_at < now() OR EXISTS (
                            SELECT 1 FROM runners r WHERE r.id = l.runner_id AND {lifeline_cut_sql('r')}))
                        ORDER BY l.shard LIMIT %(want)s FOR UPDATE SKIP LOCKED)
                    RETURNING shard
                    """, {"me": runner_id, "ttl": ttl, "shards": shards, "want": fair - len(held)}).fetchall()
                held |= {r["shard"] for r in claimed}
        return held

    def release(self, runner_id: str, shards: list[int]) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE shard_leases SET runner_id = NULL, expires_at = now() "
                         "WHERE shard = ANY(%s) AND runner_id = %s", (shards, runner_id))
