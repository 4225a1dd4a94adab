"""Numbered SQL migrations, applied at start-up by every process that needs the schema.

Files are `chalicelib/db/migrations/NNNN_name.sql`. Each is applied once, in its own
transaction, and recorded in `schema_migrations` with a checksum. A session-level
advisory lock serialises concurrent starters (two Lambdas cold-starting with the runner),
so the second one waits and then finds nothing to do. A file edited after it was applied
is reported, never silently re-run: write a new migration instead.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same in every process of one database.
ADVISORY_LOCK_KEY = 0x7A656D656F77  # "zemeow"


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a number: {versions}")
    return found


def _ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def applied_versions(conn: psycopg.Connection) -> dict[int, str]:
    """version -> checksum of what this database has applied (empty on a fresh one)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS ok").fetchone()
    if not _value(exists):
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {_get(row, "version", 0): _get(row, "checksum", 1) for row in rows}


def pending(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    migrations = discover() if migrations is None else migrations
    done = applied_versions(conn)
    return [m for m in migrations if m.version not in done]


def migrate(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply what is missing; return the versions applied by this call.

    `conn` must be in autocommit mode (each migration opens its own transaction).
    """
    migrations = discover() if migrations is None else migrations
    conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    try:
        _ensure_table(conn)
        done = applied_versions(conn)
        for m in migrations:
            if m.version in done and done[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} was changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
        newly: list[int] = []
        for m in migrations:
            if m.version in done:
                continue
            with conn.transaction():
                conn.execute(m.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
            newly.append(m.version)
        return newly
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))


def _get(row, key: str, index: int):
    return row[key] if isinstance(row, dict) else row[index]


def _value(row):
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
