"""The `commands` table: the command outbox (API -> runner) and the result store."""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database
from chalicelib.repositories.runners import runner_alive_sql

TERMINAL = ("succeeded", "failed")
NEW_COMMAND_CHANNEL = "zemeow_command_new"  # NOTIFY per inserted command (migration 0081), JSON payload


# The command queue of the runner holding the slot of `commands.session_id` (a runner that
# stopped, or whose queue was deleted, is none); read in the INSERT's own statement.
HOLDER_QUEUE_SQL = ("SELECT r.queue_url FROM slot_placements p JOIN runners r ON r.id = p.runner_id"
                    " WHERE p.slot = zemeow_slot_of(commands.session_id) AND r.stopped_at IS NULL"
                    " AND r.queue_deleted_at IS NULL")


class CommandRepository:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def insert(conn: psycopg.Connection, *, session_id: str, type: str, payload: dict[str, Any],
               idempotency_key: str | None) -> tuple[dict[str, Any] | None, bool]:
        """Insert a queued command for the session that has `session_id` now; with an
        idempotency key that session already used, return that row.

        The owner is the session row's id, resolved in the same statement: a key used by a
        deleted session of the same name is not this session's (issue 11, finding 1).
        The row carries `queue_url`: the command queue of the runner holding the session's
        slot (routing follows placement, migration 0082), None while no runner holds it.
        Returns (row, created); (None, False) when no session has that id."""
        row = conn.execute(
            f"""
            INSERT INTO commands (session_id, session_uid, type, payload, idempotency_key)
            SELECT s.session_id, s.id, %s, %s, %s FROM sessions s WHERE s.session_id = %s
            ON CONFLICT (session_uid, idempotency_key) DO NOTHING
            RETURNING *, ({HOLDER_QUEUE_SQL}) AS queue_url
            """, (type, Jsonb(payload), idempotency_key, session_id)).fetchone()
        if row is not None or not idempotency_key:
            return row, row is not None
        existing = conn.execute(
            "SELECT c.* FROM commands c JOIN sessions s ON s.id = c.session_uid "
            "WHERE s.session_id = %s AND c.idempotency_key = %s", (session_id, idempotency_key)).fetchone()
        return existing, False

    def get(self, session_id: str, command_id: str) -> dict[str, Any] | None:
        """A command of the session that has `session_id` now (never one of a deleted namesake)."""
        with self.db.connection() as conn:
            return conn.execute("SELECT c.* FROM commands c JOIN sessions s ON s.id = c.session_uid "
                                "WHERE c.id = %s AND s.session_id = %s", (command_id, session_id)).fetchone()

    @staticmethod
    def delete_for_session(conn: psycopg.Connection, session_uid: str) -> int:
        """A deleted session's commands go with it (a running one finishes into nothing)."""
        return conn.execute("DELETE FROM commands WHERE session_uid = %s", (session_uid,)).rowcount

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

    def claim(self, command_id: str, runner_id: str, live_ttl_seconds: float, *,
              session_uid: str | None = None, fenced: bool = False,
              in_order: bool = False) -> dict[str, Any] | None:
        """Take a command for execution; None when it is finished, gone, run by a live runner
        or (with `session_uid`) owned by another session row. With `in_order`, also None
        while an older command of the same session is still queued (`older_queued` says
        which: they run first), whichever way each command reached the runner.

        With `fenced` only the runner holding the command's slot (migration 0082), and not
        asked to hand it over, may take it: a runner that lost a slot while it could not see
        it (frozen past the TTL, its lifeline cut) or is handing it over starts none of its
        commands, so the new holder is the only one running them, in order."""
        fence = "" if not fenced else (
            "AND EXISTS (SELECT 1 FROM slot_placements p WHERE p.slot = zemeow_slot_of(c.session_id) "
            "AND p.runner_id = %(runner)s AND p.next_runner_id IS NULL)")
        if in_order:
            fence += (" AND NOT EXISTS (SELECT 1 FROM commands o WHERE o.session_uid = c.session_uid"
                      " AND o.status = 'queued' AND o.created_at < c.created_at)")
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                UPDATE commands c SET status = 'running', runner_id = %(runner)s, attempts = attempts + 1,
                       started_at = now(), updated_at = now()
                WHERE c.id = %(id)s AND (%(uid)s::uuid IS NULL OR c.session_uid = %(uid)s::uuid) AND (
                    c.status = 'queued'
                    OR (c.status = 'running' AND (c.runner_id IS NULL OR c.runner_id = %(runner)s OR NOT EXISTS (
                        SELECT 1 FROM runners r WHERE r.id = c.runner_id AND {runner_alive_sql('r', '%(ttl)s')}))))
                  {fence}
                RETURNING *
                """, {"id": command_id, "runner": runner_id, "ttl": live_ttl_seconds, "uid": session_uid}).fetchone()

    def older_queued(self, command_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The commands of the same session still queued and older than this one, oldest first."""
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT o.id::text AS id, o.type FROM commands c
                JOIN commands o ON o.session_uid = c.session_uid AND o.status = 'queued' AND o.created_at < c.created_at
                WHERE c.id = %s ORDER BY o.created_at LIMIT %s
                """, (command_id, limit)).fetchall()

    def release(self, command_ids: list[str], runner_id: str) -> int:
        """Give claimed, not started commands back (`running` -> `queued`): a runner handing a
        session over while its sends wait for their slot (runner_container/pacing.py). The
        next owner runs them from the backlog, oldest first; the sweeper resends them to SQS."""
        with self.db.connection() as conn:
            return conn.execute(
                "UPDATE commands SET status = 'queued', runner_id = NULL, started_at = NULL, updated_at = now() "
                "WHERE id = ANY(%s::uuid[]) AND status = 'running' AND runner_id = %s",
                (command_ids, runner_id)).rowcount

    def finish(self, command_id: str, *, ok: bool, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> None:
        with self.db.connection() as conn:
            conn.execute(
                """
                UPDATE commands SET status = %s, result = %s, error = %s, finished_at = now(), updated_at = now()
                WHERE id = %s
                """, ("succeeded" if ok else "failed", Jsonb(result) if result is not None else None,
                      Jsonb(error) if error is not None else None, command_id))

    @staticmethod
    def listen(conn: psycopg.Connection, channel: str) -> None:
        """LISTEN on the channel a trigger NOTIFYs when a command finishes (its id as payload)."""
        conn.execute(f"LISTEN {channel}")
