"""The `commands` table: the command outbox (API -> runner) and the result store."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database

TERMINAL = ("succeeded", "failed")


class CommandRepository:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def insert(conn: psycopg.Connection, *, session_id: str, type: str, payload: dict[str, Any],
               idempotency_key: str | None) -> tuple[dict[str, Any], bool]:
        """Insert a queued command; with an idempotency key already used, return that row.

        Returns (row, created)."""
        if idempotency_key:
            row = conn.execute(
                """
                INSERT INTO commands (session_id, type, payload, idempotency_key)
                VALUES (%s, %s, %s, %s)
                ON CONFLICT (session_id, idempotency_key) DO NOTHING
                RETURNING *
                """, (session_id, type, Jsonb(payload), idempotency_key)).fetchone()
            if row is not None:
                return row, True
            existing = conn.execute("SELECT * FROM commands WHERE session_id = %s AND idempotency_key = %s",
                                    (session_id, idempotency_key)).fetchone()
            return existing, False
        row = conn.execute(
            "INSERT INTO commands (session_id, type, payload) VALUES (%s, %s, %s) RETURNING *",
            (session_id, type, Jsonb(payload))).fetchone()
        return row, True

    def get(self, session_id: str, command_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM commands WHERE id = %s AND session_id = %s",
                                (command_id, session_id)).fetchone()

    def get_by_id(self, command_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM commands WHERE id = %s", (command_id,)).fetchone()

    def mark_enqueued(self, command_ids: list[str]) -> None:
        if not command_ids:
            return
        with self.db.connection() as conn:
            conn.execute("UPDATE commands SET enqueued_at = now(), updated_at = now() WHERE id = ANY(%s::uuid[])",
                         (command_ids,))

    def unsent(self, older_than_seconds: float, limit: int = 500) -> list[dict[str, Any]]:
        """Queued commands SQS never took (enqueued_at NULL) or that sat queued too long."""
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT id, session_id, type FROM commands
                WHERE status = 'queued'
                  AND coalesce(enqueued_at, created_at) < now() - make_interval(secs => %s)
                ORDER BY created_at LIMIT %s
                """, (older_than_seconds, limit)).fetchall()

    def claim(self, command_id: str, runner_id: str, live_ttl_seconds: float) -> dict[str, Any] | None:
        """Take a command for execution; None when it is finished, gone or run by a live runner."""
        with self.db.connection() as conn:
            return conn.execute(
                """
                UPDATE commands c SET status = 'running', runner_id = %(runner)s, attempts = attempts + 1,
                       started_at = now(), updated_at = now()
                WHERE c.id = %(id)s AND (
                    c.status = 'queued'
                    OR (c.status = 'running' AND (c.runner_id IS NULL OR c.runner_id = %(runner)s OR NOT EXISTS (
                        SELECT 1 FROM runners r WHERE r.id = c.runner_id AND r.stopped_at IS NULL
                          AND r.heartbeat_at > now() - make_interval(secs => %(ttl)s)))))
                RETURNING *
                """, {"id": command_id, "runner": runner_id, "ttl": live_ttl_seconds}).fetchone()

    def finish(self, command_id: str, *, ok: bool, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> None:
        with self.db.connection() as conn:
            conn.execute(
                """
                UPDATE commands SET status = %s, result = %s, error = %s, finished_at = now(), updated_at = now()
                WHERE id = %s
                """, ("succeeded" if ok else "failed", Jsonb(result) if result is not None else None,
                      Jsonb(error) if error is not None else None, command_id))

    def fail_queued_for_session(self, conn: psycopg.Connection, session_id: str, reason: dict[str, Any]) -> int:
        cur = conn.execute(
            """
            UPDATE commands SET status = 'failed', error = %s, finished_at = now(), updated_at = now()
            WHERE session_id = %s AND status = 'queued'
            """, (Jsonb(reason), session_id))
        return cur.rowcount
