from __future__ import annotations

from chalicelib.db import Database


class SessionRepository:
    def __init__(self, db: Database):
        self.db = db

    def count_by_status(self) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT status, count(*) AS n FROM sessions GROUP BY status").fetchall()
        return {row["status"]: row["n"] for row in rows}
