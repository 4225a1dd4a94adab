from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database

# What reads need: the session row, its endpoint's breaker state, its last good delivery.
_SELECT = """
    SELECT s.*, e.state AS webhook_endpoint_state,
           (SELECT max(d.updated_at) FROM webhook_deliveries d
             WHERE d.session_uid = s.id AND d.status = 'succeeded') AS webhook_last_sent
    FROM sessions s
    LEFT JOIN webhook_endpoints e ON e.session_uid = s.id AND e.url = s.webhook_url
"""

UPDATABLE = {"name", "webhook_url", "webhook_events", "webhook_secret_enc", "proxy_enabled",
             "proxy_type", "proxy_host", "proxy_port", "proxy_username", "proxy_password_enc",
             "auto_reconnect", "metadata",
             # behaviour (runner_container/behaviour.py)
             "always_online", "ignore_groups", "ignore_status_broadcast", "auto_read", "reject_calls",
             "reject_call_message", "send_rate", "typing_simulation"}


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SessionRepository:
    def __init__(self, db: Database):
        self.db = db

    def count_by_status(self) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT status, count(*) AS n FROM sessions GROUP BY status").fetchall()
        return {row["status"]: row["n"] for row in rows}

    @staticmethod
    def insert(conn: psycopg.Connection, values: dict[str, Any]) -> dict[str, Any]:
        values = {**values, "metadata": Jsonb(values.get("metadata") or {})}
        columns = list(values)
        return conn.execute(
            f"INSERT INTO sessions ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
            "RETURNING id, session_id, name, status, created_at",
            [values[c] for c in columns],
        ).fetchone()

    def get(self, session_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute(_SELECT + " WHERE s.session_id = %s", (session_id,)).fetchone()

    def status_of(self, session_id: str) -> dict[str, Any] | None:
        """Only the status (hot paths such as sending need no more than this)."""
        with self.db.connection() as conn:
            return conn.execute("SELECT id, session_id, status FROM sessions WHERE session_id = %s",
                                (session_id,)).fetchone()

    def find_by_key_digest(self, digest: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute("SELECT id, session_id, api_key_hash FROM sessions WHERE api_key_hash = %s",
                                (digest,)).fetchone()

    def list(self, *, status: str | None, name: str | None, limit: int, offset: int) -> tuple[list[dict], int]:
        where, params = [], []
        if status:
            where.append("s.status = %s")
            params.append(status)
        if name:
            where.append("s.name ILIKE %s")
            params.append(f"%{escape_like(name)}%")
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self.db.connection() as conn:
            total = conn.execute(f"SELECT count(*) AS n FROM sessions s{clause}", params).fetchone()["n"]
            rows = conn.execute(_SELECT + clause + " ORDER BY s.created_at, s.session_id LIMIT %s OFFSET %s",
                                [*params, limit, offset]).fetchall()
        return rows, total

    @staticmethod
    def update(conn: psycopg.Connection, session_id: str, values: dict[str, Any]) -> bool:
        unknown = set(values) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if "metadata" in values:
            values = {**values, "metadata": Jsonb(values["metadata"])}
        sets = ", ".join(f"{column} = %s" for column in values)
        cur = conn.execute(f"UPDATE sessions SET {sets}, updated_at = now() WHERE session_id = %s",
                           [*values.values(), session_id])
        return cur.rowcount == 1

    @staticmethod
    def replace_key_digest(conn: psycopg.Connection, session_id: str, digest: str) -> dict[str, Any] | None:
        """The session's key digest replaced: the old key stops matching with this commit."""
        return conn.execute("UPDATE sessions SET api_key_hash = %s, updated_at = now() WHERE session_id = %s "
                            "RETURNING session_id, updated_at", (digest, session_id)).fetchone()

    @staticmethod
    def lock(conn: psycopg.Connection, session_id: str) -> dict[str, Any] | None:
        return conn.execute("SELECT * FROM sessions WHERE session_id = %s FOR UPDATE", (session_id,)).fetchone()

    @staticmethod
    def set_desired_state(conn: psycopg.Connection, session_id: str, desired: str) -> None:
        """What the runner reconciles towards (`connected` / `disconnected`)."""
        conn.execute("UPDATE sessions SET desired_state = %s, updated_at = now() WHERE session_id = %s",
                     (desired, session_id))

    @staticmethod
    def bury(conn: psycopg.Connection, session: dict[str, Any], keep_days: int = 7) -> None:
        """Keep the webhook routing of a session row being deleted (see migrations 0012, 0050),
        keyed by its row id: events it produced are still delivered (and signed) with its own
        webhook, never with that of a new session reusing its session_id. Its finished
        deliveries go: only what is still in flight needs the tombstone."""
        conn.execute("DELETE FROM session_tombstones WHERE deleted_at < now() - make_interval(days => %s)",
                     (keep_days,))
        conn.execute(
            """
            INSERT INTO session_tombstones (session_uid, session_id, webhook_url, webhook_events, webhook_secret_enc,
                                            webhook_secrets_prev_enc, webhook_secrets_prev_expires_at)
            SELECT id, session_id, webhook_url, webhook_events, webhook_secret_enc,
                   webhook_secrets_prev_enc, webhook_secrets_prev_expires_at
            FROM sessions WHERE id = %s AND webhook_url IS NOT NULL
            ON CONFLICT (session_uid) DO NOTHING
            """,
            (session["id"],),
        )
        conn.execute("DELETE FROM webhook_deliveries WHERE session_uid = %s "
                     "AND status IN ('succeeded', 'failed', 'skipped')", (session["id"],))

    @staticmethod
    def delete(conn: psycopg.Connection, session_id: str) -> dict[str, Any] | None:
        return conn.execute("DELETE FROM sessions WHERE session_id = %s RETURNING id, session_id, jid",
                            (session_id,)).fetchone()
