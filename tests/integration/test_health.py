"""/health and /ready on the real database and queues, including a database that stops."""
from __future__ import annotations

import socket
import time

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.config import load_settings
from chalicelib.db.embedded import start_embedded
from chalicelib.repositories.runners import RunnerRepository
from tests.conftest import TEST_ADMIN_KEY


def _drain(sqs, url):
    """Empty a queue by receive+delete (PurgeQueue allows one call a minute on AWS)."""
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


def _register_runner(db, runner_id="health-runner"):
    RunnerRepository(db).register(runner_id, hostname=socket.gethostname(), pid=1,
                                  version="test", driver="emulator")


def test_health_names_the_missing_runner(api, clean_runners):
    response = api.get("/health")
    assert response.status_code == 503
    assert response.json_body["failing"] == ["whatsapp_manager"]
    checks = response.json_body["checks"]
    assert checks["database"] == "ok" and checks["webhook_service"] == "ok"
    assert checks["whatsapp_manager"].startswith("error: no runner heartbeat")


def test_health_is_ok_with_a_live_runner(api, db, clean_runners):
    _register_runner(db)
    response = api.get("/health")
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert body["status"] == "ok"
    assert set(body) >= {"status", "timestamp", "version", "checks"}
    with db.connection() as conn:
        active = conn.execute("SELECT count(*) AS n FROM sessions WHERE status IN "
                              "('connecting', 'connected', 'authenticated')").fetchone()["n"]
    assert body["checks"]["active_sessions"] == active
    assert response.headers["X-Request-Id"]


def test_a_stale_heartbeat_is_not_a_live_runner(api, db, settings, clean_runners):
    _register_runner(db)
    with db.connection() as conn:
        conn.execute("UPDATE runners SET heartbeat_at = now() - make_interval(secs => %s)",
                     (settings.runner_lease_ttl + 1,))
    assert api.get("/health").status_code == 503


def test_ready_checks_migrations_queues_and_runner(api, db, container, clean_runners, admin_headers):
    _drain(container.sqs, container.queues.events_dlq_url)  # other tests' poison, if any
    _register_runner(db)
    response = api.get("/ready", headers=admin_headers)
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert body["ready"] is True
    assert body["services"] == {"database": True, "migrations": True, "queues": True,
                                "events_dlq": True, "runner": True}


def test_ready_reports_a_non_empty_events_dlq(api, db, container, clean_runners, admin_headers):
    _register_runner(db)
    sqs, queues = container.sqs, container.queues
    sqs.send_message(QueueUrl=queues.events_dlq_url, MessageBody="{}")
    try:
        response = api.get("/ready", headers=admin_headers)
        assert response.status_code == 503
        assert response.json_body["failing"] == ["events_dlq"]
        assert "1 message(s)" in response.json_body["details"]["events_dlq"]
    finally:
        _drain(sqs, queues.events_dlq_url)


def test_request_id_is_echoed(api, clean_runners):
    response = api.get("/health", headers={"X-Request-Id": "req-123"})
    assert response.headers["X-Request-Id"] == "req-123"


def test_errors_from_chalice_itself_use_the_contract_shape(api):
    response = api.post("/health")
    assert response.status_code == 405
    assert response.json_body["code"] == "method_not_allowed"
    assert response.json_body["request_id"]
    assert "message" in response.json_body


@pytest.fixture
def stoppable_database(stack, tmp_path_factory):
    """A PostgreSQL server of its own, so the test can stop it."""
    pgdata = tmp_path_factory.mktemp("stoppable") / "pgdata"
    server = start_embedded(pgdata)
    yield server
    server.cleanup()


def test_health_and_ready_answer_503_quickly_when_the_database_is_down(stack, stoppable_database):
    from chalice.test import Client
    from pgserver._commands import pg_ctl

    import app as app_module

    env = {**stack.env, "DATABASE_URL": stoppable_database.get_uri(), "DB_CONNECT_TIMEOUT": "2s"}
    container = Container(load_settings(env))
    reset_container(container)
    try:
        container.ensure_schema()
        with Client(app_module.app) as client:
            assert client.http.get("/health").json_body["checks"]["database"] == "ok"
            pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=stoppable_database.pgdata,
                   user=stoppable_database.system_user)
            for path in ("/health", "/ready"):
                started = time.monotonic()
                response = client.http.get(path, headers={"Authorization": f"Bearer {TEST_ADMIN_KEY}"})
                elapsed = time.monotonic() - started
                assert response.status_code == 503
                assert "database" in response.json_body["failing"]
                # bounded: the connect timeout (2s) plus the queue checks, never a hang
                assert elapsed < 10, f"{path} took {elapsed:.1f}s"
            assert response.json_body["details"]["database"].startswith("database")
    finally:
        reset_container(None)
