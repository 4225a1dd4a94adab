"""`runners`: who is running, and whether it is alive.

A runner is alive while its row is not stopped, its heartbeat is younger than
RUNNER_LEASE_TTL and, when it holds a lifeline (migration 0080), its advisory lock is
still in `pg_locks`. The lock lives on a connection of the runner's own, so it ends with
the process: a runner killed with SIGKILL is dead for the others at once (its slots and
its running commands move), while a frozen one (SIGSTOP, a hung host) keeps the lock and
is dead only once its heartbeat is older than the TTL. A restart of PostgreSQL ends every
lock at once: a lock taken before the server started is not trusted (migration 0090), so
the restart alone makes no runner dead. `runner_alive_sql` is that rule in SQL; every
query that decides whether a runner's work may be taken over uses it.
"""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database

# pg_advisory_lock(LIFELINE_NAMESPACE, lifeline_key): the two-integer form, so the lock is
# told apart from the migrator's (one bigint) and any other advisory lock in pg_locks.
LIFELINE_NAMESPACE = 0x7A6D726C  # "zmrl"


def lifeline_held_sql(key: str, *, own: bool = False) -> str:
    """SQL true while the lifeline lock `key` (an SQL expression) is held in this database
    (with `own`: by this very connection)."""
    holder = " AND l.pid = pg_backend_pid()" if own else ""
    return ("EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = {LIFELINE_NAMESPACE}::oid AND l.objid = ({key})::oid AND l.objsubid = 2"
            f" AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()){holder})")


def _lifelines_held_sql() -> str:
    """A SELECT of the lifeline keys held in this database. Uncorrelated, so a query that
    tests many runner rows against it reads `pg_locks` once (a hashed subplan), not once per row."""
    return ("SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
            f" AND l.classid = {LIFELINE_NAMESPACE}::oid AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def lifeline_cut_sql(alias: str) -> str:
    """SQL true when the runner row `alias` took a lifeline and its lock is gone: the
    process (or at least its connection) has ended. Only for a lock taken since the server
    started: a PostgreSQL restart ends every lock at once and says nothing of the runners
    (migration 0090); until a runner takes its lifeline again, its heartbeat decides."""
    return (f"({alias}.lifeline_key IS NOT NULL AND {alias}.lifeline_taken_at > pg_postmaster_start_time()"
            f" AND {alias}.lifeline_key::bigint NOT IN ({_lifelines_held_sql()}))")


def heartbeat_sql(alias: str) -> str:
    """SQL: the runner row `alias`'s heartbeat, with the time the database itself was down
    not counted against it. Without that, an outage longer than RUNNER_LEASE_TTL made every
    runner dead at once, and the first to beat again took the others' running commands and
    sent them a second time (bench/faults.py scenario 3, a 5 s outage with a 3 s TTL).

    A runner's first heartbeat after the server (re)started keeps its last one before it
    (`heartbeat_before_start`, migration 0090); the newest of those, among the runners that
    have beaten since the start, is about when the server went down. A heartbeat not renewed
    since the start is moved forward by the outage (from then to the start): a runner alive
    when the server went down has a TTL from the restart to beat again, one already silent
    before it stays as silent. Until a runner that lived through the restart has beaten
    again, nothing is moved (each runner beats before it judges the others)."""
    start = "pg_postmaster_start_time()"
    went_down = ("(SELECT max(zmrl_b.heartbeat_before_start) FROM runners zmrl_b "
                 f"WHERE zmrl_b.heartbeat_at >= {start} AND zmrl_b.heartbeat_before_start < {start})")
    return (f"({alias}.heartbeat_at + CASE WHEN {alias}.heartbeat_at < {start} "
            f"THEN coalesce({start} - {went_down}, interval '0') ELSE interval '0' END)")


def runner_alive_sql(alias: str, ttl: str) -> str:
    """SQL true while the runner row `alias` is alive; `ttl` is the placeholder (or
    expression) of RUNNER_LEASE_TTL in seconds (used once: positional placeholders work). A
    row with no lifeline (an older runner, RUNNER_LIFELINE=off) is judged by its heartbeat
    alone. A restart of PostgreSQL changes neither: its downtime does not age a heartbeat
    (`heartbeat_sql`) and the locks it ended are not trusted (`lifeline_cut_sql`)."""
    return (f"({alias}.stopped_at IS NULL AND {heartbeat_sql(alias)} > now() - make_interval(secs => {ttl})"
            f" AND NOT {lifeline_cut_sql(alias)})")


def live_runners_sql(ttl: str) -> str:
    """A SELECT of the live runners (`id`, `max_sessions`, `queue_url`): `runner_alive_sql`
    over every row (placement reads it every tick; `pg_locks` is read once, see
    `_lifelines_held_sql`)."""
    return f"SELECT r.id, r.max_sessions, r.queue_url FROM runners r WHERE {runner_alive_sql('r', ttl)}"


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
                    heartbeat_before_start = CASE WHEN runners.heartbeat_at < pg_postmaster_start_time()
                        THEN runners.heartbeat_at ELSE runners.heartbeat_before_start END,
                    stopped_at = NULL, lifeline_key = NULL, lifeline_taken_at = NULL
                """,
                (runner_id, hostname, pid, version, driver, Jsonb(info or {})),
            )

    def heartbeat(self, runner_id: str, *, rss_mb: float | None = None, max_sessions: int | None = None) -> bool:
        """Renew the runner's lease on all it holds, with what placement reads of it: its
        memory and its cap (None: no cap). False when the row is gone or marked stopped
        (another process took our id)."""
        with self.db.connection() as conn:
            cur = conn.execute(
                "UPDATE runners SET heartbeat_at = now(), heartbeat_before_start = CASE WHEN heartbeat_at < "
                "pg_postmaster_start_time() THEN heartbeat_at ELSE heartbeat_before_start END, "
                "rss_mb = %s, max_sessions = %s WHERE id = %s AND stopped_at IS NULL",
                (rss_mb, max_sessions, runner_id),
            )
            return cur.rowcount == 1

    def set_queue_url(self, runner_id: str, queue_url: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE runners SET queue_url = %s WHERE id = %s", (queue_url, runner_id))

    def dead_queues(self, older_than_seconds: float, limit: int = 20) -> list[dict[str, Any]]:
        """Command queues of runners stopped or silent for longer than `older_than_seconds`,
        not deleted yet: a survivor drains and deletes them (runner_container/runner_queue.py)."""
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT id, queue_url FROM runners
                WHERE queue_url IS NOT NULL AND queue_deleted_at IS NULL
                  AND coalesce(stopped_at, heartbeat_at) < now() - make_interval(secs => %s)
                ORDER BY heartbeat_at LIMIT %s
                """, (older_than_seconds, limit)).fetchall()

    def mark_queue_deleted(self, runner_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE runners SET queue_deleted_at = now() WHERE id = %s", (runner_id,))

    def mark_stopped(self, runner_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("UPDATE runners SET stopped_at = now() WHERE id = %s", (runner_id,))

    def live(self, ttl_seconds: float) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                SELECT id, hostname, pid, version, driver, started_at, heartbeat_at
                FROM runners r
                WHERE {runner_alive_sql('r', '%s')}
                ORDER BY started_at
                """,
                (ttl_seconds,),
            ).fetchall()

    # -- the lifeline (runner_container/lifeline.py holds the connection) ---------------
    @staticmethod
    def take_lifeline(conn: psycopg.Connection, runner_id: str) -> int | None:
        """On `conn` (a connection of the runner's own, autocommit): lock a fresh lifeline
        key and publish it in the runner's row. The key; None when the row is gone."""
        while True:
            key = conn.execute("SELECT nextval('runner_lifeline_seq')::integer AS k").fetchone()
            key = key["k"] if isinstance(key, dict) else key[0]
            locked = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", (LIFELINE_NAMESPACE, key)).fetchone()
            if (locked["ok"] if isinstance(locked, dict) else locked[0]):
                break  # else the sequence wrapped onto a key still held: take the next one
        cur = conn.execute("UPDATE runners SET lifeline_key = %s, lifeline_taken_at = now() "
                           "WHERE id = %s AND stopped_at IS NULL", (key, runner_id))
        return key if cur.rowcount == 1 else None

    @staticmethod
    def holds_lifeline(conn: psycopg.Connection, key: int) -> bool:
        """True while `conn` still holds lifeline `key` (one round trip on that connection)."""
        row = conn.execute(f"SELECT {lifeline_held_sql('%s', own=True)} AS held", (key,)).fetchone()
        return bool(row["held"] if isinstance(row, dict) else row[0])

    def get(self, runner_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM runners WHERE id = %s", (runner_id,)).fetchone()
