"""The runner's reads by placement slot: the sessions and the command backlog of the
slots it holds (migration 0082: `sessions.slot`, `zemeow_slot_of`)."""
from __future__ import annotations

from typing import Any

from chalicelib.db import Database
from chalicelib.repositories.runners import runner_alive_sql


class SlotRepository:
    def __init__(self, db: Database):
        self.db = db

    def sessions_of(self, owned: set[int]) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT id, session_id, jid, status, desired_state, auto_reconnect FROM sessions "
                "WHERE slot = ANY(%s)", (sorted(owned),)).fetchall()

    def backlog(self, owned: set[int], *, live_ttl: float, older_than: float,
                runner_id: str | None = None) -> list[dict[str, Any]]:
        """Commands of these slots still queued (or left running by a dead runner, or marked
        running by `runner_id` itself for longer than `older_than`), oldest first.

        The last kind: a claim whose UPDATE committed while the connection died before its
        answer (PostgreSQL stopped, bench/faults.py scenario 3) leaves the row running on a
        live runner that never ran it, and nothing else would take it. Posting one that does
        run here is harmless: the actor runs it once (a finished row is not claimed again)."""
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                SELECT c.id, c.session_id, c.type FROM commands c
                WHERE (c.status = 'queued' OR (c.status = 'running' AND NOT EXISTS (
                        SELECT 1 FROM runners r WHERE r.id = c.runner_id AND {runner_alive_sql('r', '%s')}))
                       OR (c.status = 'running' AND c.runner_id = %s
                           AND c.started_at < now() - make_interval(secs => %s)))
                  AND c.created_at < now() - make_interval(secs => %s)
                  AND zemeow_slot_of(c.session_id) = ANY(%s)
                ORDER BY c.created_at LIMIT 2000
                """, (live_ttl, runner_id, older_than, older_than, sorted(owned))).fetchall()
