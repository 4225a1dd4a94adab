"""Migrations on the real PostgreSQL: fresh, re-run, concurrent starters, edited files."""
from __future__ import annotations

import threading

import psycopg
import pytest

from chalicelib.db import migrator
from devstack.stack import _recreate_database

EXPECTED_TABLES = {"sessions", "commands", "webhook_deliveries", "webhook_endpoints", "runners",
                   "slot_placements", "audit_log", "schema_migrations"}


@pytest.fixture
def fresh_db(stack):
    """An empty database of its own on the test server."""
    url = _recreate_database(stack.env["DATABASE_URL"], "zemeow_migrations_test")
    yield url


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_fresh_database_gets_every_table(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        applied = migrator.migrate(conn)
    assert applied == [m.version for m in migrator.discover()]
    assert EXPECTED_TABLES <= _tables(fresh_db)
    assert "shard_leases" not in _tables(fresh_db)  # placement by slot replaced the shards (0082)
    with psycopg.connect(fresh_db) as conn:
        slots = conn.execute("SELECT count(*), min(slot), max(slot), count(runner_id) FROM slot_placements").fetchone()
    assert slots == (4096, 0, 4095, 0)  # every slot seeded, none held


def test_rerun_applies_nothing_and_keeps_data(fresh_db):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        migrator.migrate(conn)
        conn.execute("INSERT INTO sessions (session_id, name, api_key_hash) VALUES ('keep', 'k', 'h')")
        assert migrator.migrate(conn) == []
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 1
        # the session is counted in its slot, once (a re-run must not seed or count again)
        assert conn.execute("SELECT count(*), sum(sessions) FROM slot_placements").fetchone() == (4096, 1)
        assert migrator.pending(conn) == []


def test_two_concurrent_starters_apply_each_migration_once(fresh_db):
    results: list[list[int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start():
        try:
            with psycopg.connect(fresh_db, autocommit=True) as conn:
                barrier.wait()
                results.append(migrator.migrate(conn))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    all_versions = [m.version for m in migrator.discover()]
    assert sorted(v for r in results for v in r) == all_versions  # each applied exactly once
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == all_versions


def test_an_edited_applied_migration_is_refused(fresh_db, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id int);")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert migrator.migrate(conn, migrator.discover(tmp_path)) == [1]
        (tmp_path / "0001_first.sql").write_text("CREATE TABLE t1 (id bigint);")
        with pytest.raises(migrator.MigrationError, match="changed after it was applied"):
            migrator.migrate(conn, migrator.discover(tmp_path))


def test_a_failing_migration_leaves_nothing_half_done(fresh_db, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE ok1 (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedFunction):
            migrator.migrate(conn, migrator.discover(tmp_path))
        assert [m.version for m in migrator.pending(conn, migrator.discover(tmp_path))] == [2]
    assert "ok1" in _tables(fresh_db) and "half" not in _tables(fresh_db)


def test_badly_named_migration_files_are_refused(tmp_path):
    (tmp_path / "1_first.sql").write_text("SELECT 1;")
    with pytest.raises(migrator.MigrationError, match="NNNN_name.sql"):
        migrator.discover(tmp_path)


def test_session_api_keys_are_stored_as_digests_only(stack):
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions'")}
    assert "api_key_hash" in columns and "api_key" not in columns
    assert "proxy_password" not in columns and "proxy_password_enc" in columns
