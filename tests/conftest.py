"""Test fixtures on the real parts: embedded PostgreSQL, LocalStack, the messaging stack.

The session gets its own database (`zemeow_test`, recreated), its own data dir
(`.zemeow/test`) and its own queue prefix, so `make test` can run beside `make run`.
A LocalStack that already answers is reused; otherwise one is started and stopped.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from chalicelib.bootstrap import Container, reset_container  # noqa: E402
from chalicelib.config import load_settings  # noqa: E402
from chalicelib.netguard import install_offline_resolver  # noqa: E402
from chalicelib.netguard.offline import loopback_resolver, offline_resolver  # noqa: E402
from devstack import offline_env  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402
from tests.support.skip_policy import (  # noqa: E402,F401 - hooks: a skip not on the allow-list fails the run
    pytest_collectreport, pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary)

install_offline_resolver()  # no test sends a DNS query off this machine (see chalicelib/netguard/offline.py)
# processes the tests start load devstack/offline_site/sitecustomize.py (same guard, loopback-only connections)

TEST_ADMIN_KEY = "zadm_test_" + secrets.token_urlsafe(24)


def _free_port() -> int:
    from devstack.processes import free_port

    return free_port()


def _test_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "QUEUE_PREFIX", "MEDIA_BUCKET", "INBOUND_MEDIA")}
    env.update({
        "ENVIRONMENT": "test",
        "DATA_DIR": str(PROJECT_ROOT / ".zemeow" / "test"),
        "QUEUE_PREFIX": f"zt{os.getpid()}",
        "ADMIN_API_KEY": TEST_ADMIN_KEY,
        "ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "PROXY_ALLOW_PRIVATE": "true",  # the proxy tests dial pproxy on loopback
        "WHATSAPP_DRIVER": "emulator",
        "EMULATOR_TOKEN": secrets.token_urlsafe(24),  # the emulator's control API refuses requests without it
        "RUNNER_HEARTBEAT_INTERVAL": "0.5s",
        "RUNNER_LEASE_TTL": "3s",
        "DB_CONNECT_TIMEOUT": "3s",
        "LOG_LEVEL": "INFO",
        # the per-key limits stay on (every request is charged) but high enough for the suite;
        # tests/integration/test_api_rate_limit.py sets low ones
        "API_RATE_LIMIT": "100000/1m",
        "API_ADMIN_RATE_LIMIT": "1000000/1m",
        # runner processes started by tests must never collide with `make run`'s ports
        "METRICS_PORT": str(_free_port()),
        "EMULATOR_PORT": str(_free_port()),
    })
    return offline_env(env)


@pytest.fixture(scope="session")
def stack():
    """Database migrated, LocalStack up, messaging and media stacks deployed (deleted afterwards)."""
    # a database per run, so parallel runs (two developers, CI) never share one
    environment = LocalStackEnvironment(_test_env(), database_name=f"zemeow_test_{os.getpid()}",
                                        fresh_database=True, log=lambda m: print(m, file=sys.stderr))
    try:
        environment.start_database()
        environment.migrate()
        environment.start_localstack()
        environment.deploy_messaging()
        environment.deploy_media()
        os.environ.update({k: environment.env[k] for k in (
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")})
        yield environment
    finally:
        environment.stop(delete_queues=True, drop_database=True)


@pytest.fixture(scope="session")
def settings(stack):
    return load_settings(stack.env)


@pytest.fixture
def container(settings):
    """A fresh composition root wired to the test stack, installed process-wide. Its network
    guard resolves offline (webhooks, media: IP literals and localhost) and loopback only
    (proxies: nothing else is ever dialled), injected, not switched on by ENVIRONMENT."""
    instance = Container(settings, outbound_resolver=offline_resolver, proxy_resolver=loopback_resolver)
    reset_container(instance)
    yield instance
    reset_container(None)


@pytest.fixture
def api(container):
    """The Chalice app invoked in-process (same handlers `chalice local` serves)."""
    from chalice.test import Client

    import app as app_module
    from tests.support.openapi_validation import OpenApiResponseChecker, ValidatingHttp

    with Client(app_module.app, stage_name="local") as client:
        yield ValidatingHttp(client.http, OpenApiResponseChecker(app_module._openapi()))


@pytest.fixture
def db(container):
    return container.db


@pytest.fixture
def clean_runners(db):
    with db.connection() as conn:
        conn.execute("DELETE FROM runners")
    yield
    with db.connection() as conn:
        conn.execute("DELETE FROM runners")


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {TEST_ADMIN_KEY}", "Content-Type": "application/json"}


@pytest.fixture
def make_session(api, admin_headers):
    """Create a session through the API; returns the 201 body (with its one-time api_key)."""
    import json
    import uuid

    def make(**fields):
        body = {"name": "test session", "session_id": f"t-{uuid.uuid4().hex[:10]}", **fields}
        response = api.post("/sessions", headers=admin_headers, body=json.dumps(body))
        assert response.status_code == 201, response.body
        return response.json_body

    return make


@pytest.fixture
def online(make_session, db):
    """A session the database says is paired and connected (no runner needed to accept)."""
    created = make_session()
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET status = 'authenticated', jid = '5511000000000@s.whatsapp.net' "
                     "WHERE session_id = %s", (created["session_id"],))
    return created


@pytest.fixture
def receiver():
    """A real HTTP server receiving webhooks (tests/support/webhook_receiver.py)."""
    from tests.support.webhook_receiver import Receiver

    instance = Receiver()
    yield instance
    instance.close()


@pytest.fixture
def bridge(container, api):
    """The local SQS event-source mapping running app.py's dispatch_webhooks (2 pollers: Lambda concurrency)."""
    import threading

    import app as app_module
    from devstack.sqs_bridge import SqsBridge

    bridge = SqsBridge(app_module.app, app_module, container.sqs, queue_url_for=events_queue_url_for(container),
                       wait_seconds=1, pollers_per_queue=2, region=container.settings.aws_region,
                       log=lambda m: print(m))
    stop = threading.Event()
    threads = bridge.run(stop)
    yield bridge
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def events_queue_url_for(container):
    """app.py names the queue from QUEUE_PREFIX at import; the test stack's prefix lives in its settings."""
    from chalicelib.config import queue_prefix_from_env

    imported = f"{queue_prefix_from_env()}-events"
    return lambda name: container.queues.events_url if name == imported else container.queues.url(name)


def session_headers(created: dict) -> dict:
    return {"Authorization": f"Bearer {created['api_key']}", "Content-Type": "application/json"}
