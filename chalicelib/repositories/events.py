from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


class EventOutboxRepository:
    """The event outbox. Methods take a connection so callers can share a transaction."""

    @staticmethod
    def next_sequence(conn: psycopg.Connection, session_id: str) -> dict[str, Any] | None:
        """The session's next event sequence number and its row id (`{"seq", "uid"}`), or None."""
        return conn.execute(
            "UPDATE sessions SET event_seq = event_seq + 1 WHERE session_id = %s RETURNING event_seq AS seq, id AS uid",
            (session_id,),
        ).fetchone()

    @staticmethod
    def insert(conn: psycopg.Connection, envelope: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO event_outbox (id, session_id, session_uid, event, envelope) VALUES (%s, %s, %s, %s, %s)",
            (envelope["id"], envelope["session_id"], (envelope.get("metadata") or {}).get("session_uid"),
             envelope["event"], Jsonb(envelope)),
        )

    @staticmethod
    def mark_sent(conn: psycopg.Connection, ids: list[str]) -> None:
        if ids:
            conn.execute("UPDATE event_outbox SET sent_at = now() WHERE id = ANY(%s::uuid[])", (ids,))

    @staticmethod
    def mark_unsent_undelivered(conn: psycopg.Connection, sent_within_seconds: float) -> int:
        """Events handed to a queue in the last `sent_within_seconds` that no dispatcher has
        taken (no delivery row): unsent again, so that the sweeper resends them. For a queue
        that lost what it held (a LocalStack restarted without state); an event already
        taken is recognised by its id and not delivered twice."""
        return conn.execute(
            """
            UPDATE event_outbox e SET sent_at = NULL
            WHERE e.sent_at > now() - make_interval(secs => %s)
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)
            """, (sent_within_seconds,)).rowcount

    @staticmethod
    def claim_unsent(conn: psycopg.Connection, older_than_seconds: float, limit: int = 500) -> list[dict[str, Any]]:
        """Unsent rows, locked until the caller's transaction ends; rows another sweeper holds
        are skipped. Every runner sweeps: without the lock, two runners sent the same backlog
        (bench/faults.py scenario 4 delivered 250 of 479 events twice after SQS came back)."""
        rows = conn.execute(
            """
            SELECT envelope FROM event_outbox
            WHERE sent_at IS NULL AND created_at < now() - make_interval(secs => %s)
            ORDER BY created_at LIMIT %s
            FOR UPDATE SKIP LOCKED
            """,
            (older_than_seconds, limit),
        ).fetchall()
        return [row["envelope"] for row in rows]

    @staticmethod
    def page(conn: psycopg.Connection, session_uid: str, *, after: int | None, limit: int,
             retention_seconds: float) -> list[dict[str, Any]]:
        """One session row's envelopes in sequence order (oldest first), newer than the
        retention: those after sequence `after`, or the newest `limit` when `after` is None.
        Uses `idx_event_outbox_session_seq` (migration 0063)."""
        seq = "(envelope #>> '{metadata,sequence}')::bigint"
        if after is None:
            rows = conn.execute(
                f"""
                SELECT envelope FROM (
                    SELECT envelope, {seq} AS seq FROM event_outbox
                    WHERE session_uid = %s AND created_at > now() - make_interval(secs => %s)
                    ORDER BY {seq} DESC LIMIT %s) newest
                ORDER BY seq
                """,
                (session_uid, retention_seconds, limit),
            ).fetchall()
        else:
            rows = conn.execute(
                f"""
                SELECT envelope FROM event_outbox
                WHERE session_uid = %s AND {seq} > %s AND created_at > now() - make_interval(secs => %s)
                ORDER BY {seq} LIMIT %s
                """,
                (session_uid, after, retention_seconds, limit),
            ).fetchall()
        return [row["envelope"] for row in rows]
