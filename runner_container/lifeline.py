"""The runner's lifeline: an advisory lock on a database connection of its own.

PostgreSQL ends a connection as soon as its process dies, and with it the session-level
advisory locks it held. So while a runner's lifeline lock is in `pg_locks` the process is
there; once it is gone, the runner is dead for every other runner at once
(`chalicelib.repositories.runners.runner_alive_sql`): after a SIGKILL its slots are
orphans, and so move with its running commands, at the survivors' next tick, not after
RUNNER_LEASE_TTL. The heartbeat and the TTL still decide for a runner whose process is
there but does nothing (SIGSTOP, a hung host): its connection, and so its lock, stays open.

A lifeline that breaks while the runner lives (a dropped connection, a database restart)
is taken again on the next tick under a new key. A database restart ends every runner's
lock at once: a lock taken before the server started is not trusted (`lifeline_cut_sql`,
migration 0090), so the others do not see every runner dead at once and take each other's
slots. After a dropped connection alone the others may take this runner's slots; the
placement fence in the command claim (`CommandRepository.claim` with `fenced`) keeps it
from starting commands of a slot it lost, and its next placement tick tells it which
sessions to stop. RUNNER_LIFELINE=off (a pooler in transaction mode between
the runner and PostgreSQL, where a session lock is not tied to the runner's connection)
leaves the key NULL: the TTL alone decides.
"""
from __future__ import annotations

from typing import Any

import psycopg

from chalicelib.db import Database
from chalicelib.errors import DependencyUnavailable
from chalicelib.repositories.runners import RunnerRepository


class Lifeline:
    def __init__(self, db: Database, runner_id: str, *, enabled: bool = True, log: Any = None):
        self.db = db
        self.runner_id = runner_id
        self.enabled = enabled
        self.log = log
        self.key: int | None = None
        self._conn: psycopg.Connection | None = None

    def ensure(self) -> bool:
        """Check the lock (one round trip on its connection) and take a new one when it is
        gone. True when it was (re)taken by this call. Raises DependencyUnavailable when the
        database cannot be reached: the tick fails and is tried again."""
        if not self.enabled:
            return False
        if self._conn is not None and self.key is not None:
            try:
                if RunnerRepository.holds_lifeline(self._conn, self.key):
                    return False
            except psycopg.Error:
                pass
            if self.log:
                self.log.warning("runner lifeline lost; taking a new one", extra={"runner_id": self.runner_id})
        self._drop()
        try:
            self._conn = self.db.connect_direct(application_name="zemeow-runner-lifeline",
                                                options="-c statement_timeout=5000")
            self.key = RunnerRepository.take_lifeline(self._conn, self.runner_id)
        except psycopg.Error as exc:
            self._drop()
            raise DependencyUnavailable(f"runner lifeline: {str(exc).strip()[:200]}",
                                        code="database_unavailable") from exc
        return True

    def close(self) -> None:
        """End the connection (and the lock): the others see this runner gone at once."""
        self._drop()

    def _drop(self) -> None:
        conn, self._conn, self.key = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
