"""PostgreSQL access: one psycopg 3 connection pool per process.

Sizing: a warm Lambda container serves one request at a time, so it holds exactly one
connection (`DB_POOL_MAX_SIZE` defaults to 1 there, 10 elsewhere). The pool opens
lazily and never blocks start-up: a database that is down makes `connection()` raise
`DependencyUnavailable` after `DB_CONNECT_TIMEOUT` instead of hanging a request.
Every connection gets a `statement_timeout`. A connection that sat idle in the pool for
more than CHECK_IF_IDLE_FOR is checked before it is handed out (a Lambda thawed after
minutes, a database restarted meanwhile), so that such a restart costs one reconnect, not
one failed request. One used a moment ago is handed out as it is: checking it too would
add a round trip to each of the several checkouts a request makes.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from chalicelib.errors import DependencyUnavailable

CHECK_IF_IDLE_FOR = 1.0  # seconds


def _returned(conn: psycopg.Connection) -> None:
    conn.info_returned_at = time.monotonic()  # type: ignore[attr-defined]


def _check_if_idle(conn: psycopg.Connection) -> None:
    returned = getattr(conn, "info_returned_at", None)
    if returned is not None and time.monotonic() - returned < CHECK_IF_IDLE_FOR:
        return
    ConnectionPool.check_connection(conn)


class Database:
    def __init__(
        self,
        url: str,
        *,
        max_size: int = 10,
        connect_timeout: float = 5.0,
        statement_timeout: float = 15.0,
        application_name: str = "zemeow",
    ):
        self.url = url
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._kwargs: dict[str, Any] = {
            "connect_timeout": max(1, int(round(connect_timeout))),
            "application_name": application_name,
            "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            "autocommit": True,
            "row_factory": dict_row,
        }
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def _get_pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    min_size=0,
                    max_size=self._max_size,
                    kwargs=self._kwargs,
                    timeout=self._connect_timeout,
                    check=_check_if_idle,
                    reset=_returned,
                    reconnect_timeout=0,  # never give up reconnecting in the background
                    open=False,
                    name="zemeow",
                )
                self._pool.open(wait=False)
            return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit mode; use `conn.transaction()` for units of work."""
        try:
            with self._get_pool().connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise DependencyUnavailable(
                f"database did not answer within {self._connect_timeout:g}s",
                code="database_unavailable",
            ) from exc
        except psycopg.OperationalError as exc:
            raise DependencyUnavailable(
                f"database error: {_first_line(exc)}", code="database_unavailable"
            ) from exc

    def connect_direct(self, **overrides: Any) -> psycopg.Connection:
        """A connection outside the pool, for migrations and LISTEN."""
        kwargs = {**self._kwargs, **overrides}
        return psycopg.connect(self.url, **kwargs)

    def ping(self) -> None:
        """One round trip through the pool (the health check); raises when the database does not answer."""
        with self.connection() as conn:
            conn.execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
