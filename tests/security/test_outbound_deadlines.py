"""Finding 9: every outbound request has a total deadline (connect + the whole body), and
one tenant's slow endpoints cannot hold all the dispatcher's threads.

The slow servers are real loopback servers dripping one byte a second: a read timeout
alone never fires against them (each byte comes in time), only a total deadline does.
"""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.events import make_envelope
from chalicelib.netguard.resolve import NetPolicy
from runner_container.media_fetch import fetch_media
from runner_container.wa_messages import MessageBuildError
from tests.support.runner_harness import wait_for
from tests.security.servers import HttpServer, RawServer, drip, hold
from tests.support.webhook_receiver import Receiver
from tests.support.sqs import RecordingSqs

DEADLINE = 2.0
MARGIN = 1.0


@pytest.fixture
def stopped():
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def drip_server(stopped):
    server = HttpServer({"/slow": drip(total=12, every=1.0, stopped=stopped)})
    yield server
    server.close()


def _drip_headers(stopped):
    def serve(conn):
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            if stopped.wait(1.0):
                return
            conn.sendall(bytes([byte]))
    return serve


def test_a_media_fetch_ends_by_its_deadline_against_a_dripping_body(drip_server):
    started = time.monotonic()
    with pytest.raises(MessageBuildError) as info:
        fetch_media(drip_server.url("/slow"), 10_000, policy=NetPolicy(allow_private=True), timeout=DEADLINE)
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + MARGIN, elapsed
    assert info.value.code == "media_fetch_failed" and "in time" in info.value.message


def test_a_media_fetch_ends_by_its_deadline_against_dripping_headers(stopped):
    server = RawServer(_drip_headers(stopped))
    try:
        started = time.monotonic()
        with pytest.raises(MessageBuildError) as info:
            fetch_media(f"http://127.0.0.1:{server.port}/x", 10_000, policy=NetPolicy(allow_private=True),
                        timeout=DEADLINE)
        assert time.monotonic() - started < DEADLINE + MARGIN
        assert info.value.code == "media_fetch_failed"
    finally:
        server.close()


def test_an_https_request_ends_by_its_deadline_against_a_dripping_tls_handshake(stopped):
    """The watchdog reaches a socket that TLS wrapped (through a duplicate descriptor)."""
    from chalicelib.netguard.http import OutboundError, OutboundHttp

    def serve(conn):
        conn.recv(4096)  # the ClientHello
        for byte in b"\x16\x03\x03\x00\x40" + b"\x02" * 64:  # a ServerHello, one byte at a time
            if stopped.wait(0.5):
                return
            conn.sendall(bytes([byte]))

    server = RawServer(serve)
    try:
        started = time.monotonic()
        with pytest.raises(OutboundError) as info:
            OutboundHttp(NetPolicy(allow_private=True), user_agent="test").request(
                "GET", f"https://127.0.0.1:{server.port}/", timeout=DEADLINE)
        assert time.monotonic() - started < DEADLINE + MARGIN
        assert info.value.kind == "timeout"
    finally:
        server.close()


@pytest.fixture
def fast_container(settings, api):
    container = Container(dataclasses.replace(settings, webhook_timeout=DEADLINE))
    reset_container(container)
    yield container
    reset_container(None)


def _records(envelopes):
    return [{"messageId": str(uuid.uuid4()), "body": json.dumps(e), "attributes": {}} for e in envelopes]


def test_a_webhook_attempt_ends_by_webhook_timeout_and_is_recorded_as_a_timeout(fast_container, make_session, db,
                                                                               drip_server):
    created = make_session(webhook={"url": drip_server.url("/slow"), "events": ["message.*"]})
    dispatcher = fast_container.webhook_dispatcher
    dispatcher.sqs = RecordingSqs()
    envelope = make_envelope(created["session_id"], "message.received", {})
    dispatcher.handle(_records([envelope]))

    def attempt():
        with db.connection() as conn:
            return conn.execute("SELECT a.* FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
                                "WHERE d.event_id = %s", (envelope["id"],)).fetchone()
    row = wait_for(attempt, timeout=15, message="the attempt's outcome")
    assert "timed out after 2s" in row["error"], row
    assert row["outcome"] == "retry"
    assert row["latency_ms"] < (DEADLINE + MARGIN) * 1000, row["latency_ms"]


def test_one_sessions_hanging_endpoint_cannot_hold_every_thread(fast_container, make_session, db, stopped):
    hanging = RawServer(hold(stopped))
    receiver = Receiver()
    try:
        slow = make_session(webhook={"url": f"http://127.0.0.1:{hanging.port}/hook", "events": ["message.*"]})
        healthy = make_session(webhook={"url": receiver.url("/hook"), "events": ["message.*"]})
        dispatcher = fast_container.webhook_dispatcher
        dispatcher.sqs = RecordingSqs()
        dispatcher._pool = ThreadPoolExecutor(max_workers=4)  # a small pool makes the point quickly
        dispatcher.session_concurrency = 2
        slow_events = [make_envelope(slow["session_id"], "message.received", {"n": n}) for n in range(6)]
        healthy_events = [make_envelope(healthy["session_id"], "message.received", {"n": n}) for n in range(2)]
        started = time.monotonic()
        dispatcher.handle(_records(slow_events + healthy_events))
        assert time.monotonic() - started < DEADLINE  # the batch did not wait for the hanging endpoint

        # the healthy session's deliveries went through in the same batch
        assert receiver.counts.get("/hook") == 2
        with db.connection() as conn:
            rows = conn.execute("SELECT event_id, status, error, attempt FROM webhook_deliveries "
                                "WHERE session_id = %s", (healthy["session_id"],)).fetchall()
            assert sorted(r["status"] for r in rows) == ["succeeded", "succeeded"]
            slow_rows = conn.execute("SELECT id, status, error, attempt FROM webhook_deliveries "
                                     "WHERE session_id = %s", (slow["session_id"],)).fetchall()
        # the slow session: two in flight (its cap), the other four deferred, not dropped
        assert sorted(r["status"] for r in slow_rows) == ["delivering"] * 2 + ["retrying"] * 4
        deferred = [r for r in slow_rows if r["status"] == "retrying"]
        assert all("WEBHOOK_SESSION_CONCURRENCY" in r["error"] and r["attempt"] == 0 for r in deferred)
        scheduled = {json.loads(e["MessageBody"]).get("delivery_id") for e in dispatcher.sqs.sent}
        assert {str(r["id"]) for r in deferred} <= scheduled
        assert hanging.connections == 2

        # the two in flight end at WEBHOOK_TIMEOUT, recorded as timeouts, and free their slots
        def settled():
            with db.connection() as conn:
                return conn.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE session_id = %s "
                                    "AND status = 'retrying' AND error LIKE 'timed out%%'",
                                    (slow["session_id"],)).fetchone()["n"] == 2
        wait_for(settled, timeout=DEADLINE + 5, message="the hanging attempts time out")
        wait_for(lambda: not dispatcher._in_flight_by_session, timeout=5, message="slots released")
    finally:
        stopped.set()
        hanging.close()
        receiver.close()
