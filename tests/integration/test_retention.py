"""Retention (issue 14, point 2): rows past retention go, rows within it (or in flight) stay,
and a prune of 100,000 rows never holds a lock longer than one short batch.

Rows are written straight into the tables with old timestamps (what weeks of traffic leave
behind), then the scheduled handler `prune_retention` runs as EventBridge would invoke it.
"""
from __future__ import annotations

import json
import statistics
import threading
import time
import uuid

import psycopg
import pytest

from chalicelib.repositories.retention import RetentionRepository
from chalicelib.services.retention import RetentionService
from tests.integration.test_metrics import emf_lines, stdout_of

DAY = 86400


def _outbox(conn, session_id: str, *, sent_days_ago: float | None, created_days_ago: float = 0) -> str:
    event_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO event_outbox (id, session_id, event, envelope, created_at, sent_at) VALUES "
        "(%s, %s, 'message.received', '{}', now() - make_interval(secs => %s), "
        " CASE WHEN %s::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => %s::float8) END)",
        (event_id, session_id, created_days_ago * DAY, sent_days_ago, (sent_days_ago or 0) * DAY))
    return event_id


def _command(conn, created: dict, status: str, finished_days_ago: float | None) -> str:
    return str(conn.execute(
        "INSERT INTO commands (session_id, session_uid, type, status, created_at, finished_at) VALUES "
        "(%s, %s, 'send_message', %s, now() - interval '40 days', "
        " CASE WHEN %s::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => %s::float8) END) RETURNING id",
        (created["session_id"], created["id"], status, finished_days_ago, (finished_days_ago or 0) * DAY),
    ).fetchone()["id"])


def _delivery(conn, session_id: str, session_uid: str, status: str, days_ago: float) -> str:
    delivery_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO webhook_deliveries (id, event_id, session_id, session_uid, event, url, status, attempt, payload, "
        "created_at, updated_at) VALUES (%s, %s, %s, %s, 'message.received', 'http://127.0.0.1:9/h', %s, 1, '{}', "
        "now() - make_interval(secs => %s), now() - make_interval(secs => %s))",
        (delivery_id, str(uuid.uuid4()), session_id, session_uid, status, days_ago * DAY, days_ago * DAY))
    conn.execute("INSERT INTO webhook_attempts (delivery_id, attempt, at, outcome) VALUES "
                 "(%s, 1, now() - make_interval(secs => %s), 'retry')", (delivery_id, days_ago * DAY))
    return delivery_id


def _audit(conn, days_ago: float) -> int:
    return conn.execute("INSERT INTO audit_log (at, actor, action) VALUES (now() - make_interval(secs => %s), "
                        "'admin', 'retention-test') RETURNING id", (days_ago * DAY,)).fetchone()["id"]


def _bucket(conn, name: str, seconds_ago: float) -> None:
    conn.execute("INSERT INTO rate_limits (bucket, tokens, granted, updated_at) VALUES "
                 "(%s, 0, true, now() - make_interval(secs => %s))", (name, seconds_ago))


def _exists(conn, table: str, key: str, value) -> bool:
    return conn.execute(f"SELECT 1 FROM {table} WHERE {key} = %s", (value,)).fetchone() is not None


def test_rows_past_retention_go_and_rows_within_it_or_in_flight_stay(container, db, make_session, admin_headers,
                                                                      api):
    from chalice.test import Client

    import app as app_module

    created = make_session(webhook={"url": "http://127.0.0.1:9/h", "events": ["message.*"]})
    deleted = make_session(webhook={"url": "http://127.0.0.1:9/h", "events": ["message.*"]})
    with db.connection() as conn:
        gone = {
            "event_outbox": [_outbox(conn, created["session_id"], sent_days_ago=8, created_days_ago=8)],
            "commands": [_command(conn, created, "succeeded", 8), _command(conn, created, "failed", 8)],
            "webhook_deliveries": [_delivery(conn, created["session_id"], created["id"], "succeeded", 4),
                                   _delivery(conn, created["session_id"], created["id"], "failed", 31),
                                   _delivery(conn, created["session_id"], created["id"], "skipped", 31)],
            "audit_log": [_audit(conn, 91)],
            "rate_limits": [f"contacts_check:{created['session_id']}-idle"],
        }
        _bucket(conn, gone["rate_limits"][0], 2 * DAY)
        kept = {
            "event_outbox": [_outbox(conn, created["session_id"], sent_days_ago=6, created_days_ago=6),
                             # never sent (SQS was down for weeks): the outbox still owes it
                             _outbox(conn, created["session_id"], sent_days_ago=None, created_days_ago=60)],
            "commands": [_command(conn, created, "succeeded", 6), _command(conn, created, "queued", None),
                         _command(conn, created, "running", None)],
            "webhook_deliveries": [_delivery(conn, created["session_id"], created["id"], "succeeded", 2),
                                   _delivery(conn, created["session_id"], created["id"], "failed", 4),
                                   _delivery(conn, created["session_id"], created["id"], "failed", 29)],
            "audit_log": [_audit(conn, 89)],
            "rate_limits": [f"contacts_check:{deleted['session_id']}"],
        }
    # a deleted session: its delivery still retrying (for its tombstone) and its recent bucket stay
    with db.connection() as conn:
        kept["webhook_deliveries"].append(_delivery(conn, deleted["session_id"], deleted["id"], "retrying", 40))
        _bucket(conn, kept["rate_limits"][0], 600)
    assert api.delete(f"/sessions/{deleted['session_id']}", headers=admin_headers).status_code == 204

    with stdout_of(container) as out, Client(app_module.app) as client:
        answer = client.lambda_.invoke("prune_retention", client.events.generate_cw_event(
            source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]))
    assert answer.payload["complete"] is True
    assert answer.payload["deleted"]["commands"] >= 2
    # one EMF line for the run (chalicelib/metrics.py)
    [line] = [line for line in emf_lines(out.getvalue())
              if line["service"] == f"{container.settings.queue_prefix}-retention"]
    assert line["RetentionDeleted"][0] >= 7 and line["RetentionIncomplete"] == [0.0]
    print("EXAMPLE", json.dumps(line))

    keys = {"event_outbox": "id", "commands": "id", "webhook_deliveries": "id", "audit_log": "id",
            "rate_limits": "bucket"}
    with db.connection() as conn:
        for table, values in gone.items():
            for value in values:
                assert not _exists(conn, table, keys[table], value), f"{table} {value} should be pruned"
        for table, values in kept.items():
            for value in values:
                assert _exists(conn, table, keys[table], value), f"{table} {value} should be kept"
        # attempts went with their deliveries
        orphans = conn.execute("SELECT count(*) AS n FROM webhook_attempts WHERE delivery_id = ANY(%s::uuid[])",
                               (gone["webhook_deliveries"],)).fetchone()["n"]
        assert orphans == 0
        assert _exists(conn, "session_tombstones", "session_uid", deleted["id"])


def test_a_setting_of_off_keeps_a_table_forever(container, db):
    service = RetentionService(db, {**container.settings.retention, "audit_log": None}, batch_size=100)
    with db.connection() as conn:
        old = _audit(conn, 400)
    report = service.run()
    assert "audit_log" not in report.deleted
    with db.connection() as conn:
        assert _exists(conn, "audit_log", "id", old)
        conn.execute("DELETE FROM audit_log WHERE id = %s", (old,))


class TimedRepository(RetentionRepository):
    """Records how long each batch's transaction lasted (its locks live no longer)."""

    def __init__(self):
        super().__init__()
        self.durations: list[float] = []

    def prune_batch(self, conn, rule, cutoff_seconds, limit):
        started = time.perf_counter()
        try:
            return super().prune_batch(conn, rule, cutoff_seconds, limit)
        finally:
            self.durations.append(time.perf_counter() - started)


LOCK_BOUND_SECONDS = 1.0  # what README "Retention" states for RETENTION_BATCH_SIZE=1000


@pytest.mark.timeout(300)
def test_pruning_100k_rows_never_holds_a_lock_longer_than_one_short_batch(container, db):
    rows = 100_000
    marker = f"retention-bench-{uuid.uuid4().hex[:8]}"
    with db.connection() as conn:
        ids = [r["id"] for r in conn.execute(
            "INSERT INTO event_outbox (id, session_id, event, envelope, created_at, sent_at) "
            "SELECT gen_random_uuid(), %s, 'message.received', '{\"data\": {}}', now() - interval '9 days', "
            "now() - interval '8 days' FROM generate_series(1, %s) RETURNING id", (marker, rows)).fetchall()]
        conn.execute("ANALYZE event_outbox")
    repo = TimedRepository()
    service = RetentionService(db, {"event_outbox": 7 * DAY}, batch_size=container.settings.retention_batch_size,
                               budget=240, repo=repo)

    # a concurrent writer: inserts new events and updates rows the prune is deleting (the worst
    # case: it may have to wait for the batch that holds them); each statement is timed
    waits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        import random

        with psycopg.connect(container.database_url, autocommit=True) as conn:
            while not stop.is_set():
                started = time.perf_counter()
                conn.execute("UPDATE event_outbox SET envelope = envelope WHERE id = %s", (random.choice(ids),))
                conn.execute("INSERT INTO event_outbox (id, session_id, event, envelope) VALUES (%s, %s, 'x', '{}')",
                             (str(uuid.uuid4()), marker))
                waits.append(time.perf_counter() - started)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    started = time.perf_counter()
    report = service.run()
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join(timeout=10)

    with db.connection() as conn:
        left = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_id = %s AND sent_at IS NOT NULL",
                            (marker,)).fetchone()["n"]
        fresh = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_id = %s AND sent_at IS NULL",
                             (marker,)).fetchone()["n"]
        conn.execute("DELETE FROM event_outbox WHERE session_id = %s", (marker,))
    figures = {"rows": report.deleted["event_outbox"], "seconds": round(elapsed, 2),
               "rows_per_s": round(report.deleted["event_outbox"] / elapsed),
               "batches": report.batches, "batch_ms_p50": round(statistics.median(repo.durations) * 1000, 1),
               "batch_ms_max": round(max(repo.durations) * 1000, 1),
               "writer_statements": len(waits), "writer_wait_ms_p50": round(statistics.median(waits) * 1000, 2),
               "writer_wait_ms_max": round(max(waits) * 1000, 1)}
    print("RETENTION FIGURES", json.dumps(figures))
    assert report.complete and left == 0 and report.deleted["event_outbox"] == rows
    assert fresh > 0  # the writer kept inserting all along (new, unsent rows are never pruned)
    assert max(repo.durations) < LOCK_BOUND_SECONDS, figures
    assert max(waits) < LOCK_BOUND_SECONDS, figures


def test_the_local_stack_plays_the_hourly_schedule_with_the_aws_handler(container):
    """devstack's bridge invokes `prune_retention` as EventBridge would (at start, then hourly)."""
    import app as app_module
    from devstack.schedule_bridge import ScheduleBridge, period_seconds

    bridge = ScheduleBridge(app_module.app, app_module, log=lambda _m: None)
    [source] = bridge.sources()
    assert source.name == "prune_retention" and period_seconds(source.schedule_expression) == 3600
    stop = threading.Event()
    seen: list[str] = []
    bridge.log = seen.append
    [thread] = bridge.run(stop)
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert seen and seen[0].startswith("schedule prune_retention: {'deleted'") and "'complete': True" in seen[0]


def test_retention_settings_name_the_variable_when_wrong():
    from chalicelib.config import load_settings
    from chalicelib.errors import ConfigError

    assert load_settings({"AUDIT_LOG_RETENTION": "off", "COMMAND_RETENTION": "2d"}).retention["commands"] == 2 * DAY
    with pytest.raises(ConfigError) as error:
        load_settings({"EVENT_RETENTION": "soon", "COMMAND_RETENTION": "10s",
                       "RATE_LIMIT_RETENTION": "10m", "WEBHOOK_FAILED_DELIVERY_RETENTION": "1d",
                       "RETENTION_BATCH_SIZE": "5"})
    text = str(error.value)
    for name in ("EVENT_RETENTION=soon", "COMMAND_RETENTION=10s", "RATE_LIMIT_RETENTION must be at least",
                 "WEBHOOK_FAILED_DELIVERY_RETENTION must not be shorter", "RETENTION_BATCH_SIZE=5"):
        assert name in text, text
