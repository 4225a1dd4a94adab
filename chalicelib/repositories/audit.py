from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db import Database


class AuditRepository:
    def __init__(self, db: Database):
        self.db = db

    def add(self, *, actor: str, action: str, session_id: str | None, request_id: str | None,
            details: dict[str, Any]) -> None:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO audit_log (actor, action, session_id, request_id, details) VALUES (%s, %s, %s, %s, %s)",
                (actor, action, session_id, request_id, Jsonb(details)),
            )

    def recent(self, *, session_id: str | None, limit: int) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            if session_id:
                return conn.execute("SELECT * FROM audit_log WHERE session_id = %s ORDER BY id DESC LIMIT %s",
                                    (session_id, limit)).fetchall()
            return conn.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT %s", (limit,)).fetchall()
