from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from chalicelib.db import Database


class RunnerRepository:
    def __init__(self, db: Database):
        self.db = db

    def register(self, runner_id: str, *, hostname: str, pid: int, version: str,
                 driver: str, info: dict[str, Any] | None = None) -> None:
        with self.db.connection() as conn:
            conn.execute(
                """
                INSERT INTO runners (id, hostname, pid, version, driver, info)
                VALUES (%s, %s, %s, %s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET
                    hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
                    version = EXCLUDED.version, driver = EXCLUDED.driver,
                    info = EXCLUDED.info, started_at = now(), heartbeat_at = now(),
                    stopped_at = NULL
                """,
                (runner_id, hostname, pid, version, driver, Jsonb(info or {})),
            )

    def heartbeat(self, runner_id: str) -> bool:
        """False when the row is gone or marked stopped (another process took our id)."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE runners SET heartbeat_at = now() WHERE id = %s AND stopped_at IS NULL",
                (runner_id,),
            )
            return cur.rowcount == 1

    def mark_stopped(self, runner_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE runners SET stopped_at = now() WHERE id = %s", (runner_id,))

    def live(self, ttl_seconds: float) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT id, hostname, pid, version, driver, started_at, heartbeat_at
                FROM runners
                WHERE stopped_at IS NULL
                  AND heartbeat_at > now() - make_interval(secs => %s)
                ORDER BY started_at
                """,
                (ttl_seconds,),
            ).fetchall()

    def get(self, runner_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM runners WHERE id = %s", (runner_id,)).fetchone()
