"""How a batch's outcomes are written (chalicelib/repositories/webhooks.py `write_outcomes`):
one statement for the whole batch, the same delivery twice in a batch (an SQS duplicate),
and a receiver's answer the database cannot hold as text (a NUL byte)."""
from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import uuid

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.events import make_envelope
from chalicelib.webhooks.dispatcher import delivery_id_for
from tests.support.sqs import RecordingSqs


@pytest.fixture
def container(settings):
    instance = Container(dataclasses.replace(settings, webhook_retry_schedule=(1.0, 2.0), webhook_retry_count=2))
    reset_container(instance)
    yield instance
    reset_container(None)


@pytest.fixture
def nul_server():
    """A receiver answering 200 with a NUL byte in its body."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *_args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"ok\x00then more"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def _record(body) -> dict:
    return {"messageId": str(uuid.uuid4()), "body": json.dumps(body), "attributes": {"ApproximateReceiveCount": "1"}}


def _rows(db, delivery_id):
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM webhook_deliveries WHERE id = %s", (delivery_id,)).fetchone()
        attempts = conn.execute("SELECT * FROM webhook_attempts WHERE delivery_id = %s ORDER BY id",
                                (delivery_id,)).fetchall()
    return row, attempts


def test_an_answer_with_a_nul_byte_is_recorded_not_a_failed_batch(container, make_session, db, nul_server):
    # before: PostgreSQL refused the excerpt ("text fields cannot contain NUL"), the whole
    # batch raised and came back from SQS, and was POSTed again, and again
    created = make_session(webhook={"url": nul_server, "events": ["message.*"]})
    dispatcher = container.webhook_dispatcher
    dispatcher.sqs = RecordingSqs()
    envelope = make_envelope(created["session_id"], "message.received", {"n": 1},
                             metadata={"session_uid": created["id"]})
    assert dispatcher.handle([_record(envelope)]) == {"batchItemFailures": []}
    row, attempts = _rows(db, delivery_id_for(envelope["id"], nul_server))
    assert row["status"] == "succeeded" and row["http_status"] == 200
    assert row["response_excerpt"] == "ok\ufffdthen more"
    assert [(a["outcome"], a["response_excerpt"]) for a in attempts] == [("succeeded", "ok\ufffdthen more")]


def test_the_same_event_twice_in_one_batch_is_written(container, make_session, db, receiver):
    # one INSERT ... ON CONFLICT cannot touch a row twice: a batch holding an SQS duplicate
    # is written row by row
    url = receiver.url("/twice")
    created = make_session(webhook={"url": url, "events": ["message.*"]})
    dispatcher = container.webhook_dispatcher
    dispatcher.sqs = RecordingSqs()
    envelope = make_envelope(created["session_id"], "message.received", {"n": 2},
                             metadata={"session_uid": created["id"]})
    other = make_envelope(created["session_id"], "message.received", {"n": 3},
                          metadata={"session_uid": created["id"]})
    assert dispatcher.handle([_record(envelope), _record(other), _record(envelope)]) == {"batchItemFailures": []}
    row, attempts = _rows(db, delivery_id_for(envelope["id"], url))
    assert row["status"] == "succeeded" and row["attempt"] == 1
    assert [a["outcome"] for a in attempts] == ["succeeded", "succeeded"]  # both POSTs are on record
    row, attempts = _rows(db, delivery_id_for(other["id"], url))
    assert row["status"] == "succeeded" and [a["outcome"] for a in attempts] == ["succeeded"]


def test_a_batch_is_written_in_one_statement_with_every_field(container, make_session, db, receiver):
    url = receiver.url("/one")
    receiver.set_behaviour("/one", lambda n: (503, {}, 0.0) if n % 2 else (200, {}, 0.0))
    created = make_session(webhook={"url": url, "events": ["message.*"]})
    dispatcher = container.webhook_dispatcher
    recording = RecordingSqs()
    dispatcher.sqs = recording
    envelopes = [make_envelope(created["session_id"], "message.received", {"n": i},
                               metadata={"session_uid": created["id"]}) for i in range(6)]
    statements = []
    original = dispatcher.repo.write_outcomes

    def counting(conn, deliveries, attempts):
        statements.append((len(deliveries), len(attempts)))
        return original(conn, deliveries, attempts)

    dispatcher.repo.write_outcomes = counting
    dispatcher.handle([_record(e) for e in envelopes])
    assert statements == [(6, 6)]
    rows = [_rows(db, delivery_id_for(e["id"], url)) for e in envelopes]
    statuses = sorted(row["status"] for row, _ in rows)
    assert statuses.count("succeeded") + statuses.count("retrying") == 6 and "retrying" in statuses
    for (row, attempts), envelope in zip(rows, envelopes):
        assert row["payload"] == envelope and str(row["session_uid"]) == created["id"]
        assert row["round_attempt"] == 1 and row["latency_ms"] is not None and row["last_attempt_at"] is not None
        assert row["enqueued_at"] is not None and row["target"] == "session"
        assert (row["succeeded_at"] is not None) == (row["status"] == "succeeded")
        assert (row["next_attempt_at"] is not None) == (row["status"] == "retrying")
        [attempt] = attempts
        assert attempt["http_status"] == row["http_status"] and attempt["at"] is not None
    retries = [json.loads(e["MessageBody"]) for e in recording.sent]
    assert len(retries) == statuses.count("retrying")


def test_a_delivery_parked_while_another_dispatchers_probe_closes_the_breaker_is_released(
        container, make_session, db):
    """The batch read the breaker open and parked its delivery; before its write landed,
    another dispatcher's probe succeeded, closed the breaker and released the parked rows
    (ours was not written yet). The parked row must not stay 'retrying' with nothing left
    to release it: the write sees the breaker closed and releases it itself."""
    url = "http://127.0.0.1:9/never-dialled"  # parked: no attempt is made
    created = make_session(webhook={"url": url, "events": ["message.*"]})
    dispatcher = container.webhook_dispatcher
    dispatcher.sqs = RecordingSqs()
    endpoint = (created["id"], url)
    repo = dispatcher.recorder.repo
    with db.connection() as conn:  # open, and still cooling down: this batch parks
        assert repo.record_failures(conn, endpoint, 50, 1) == "open"
    dispatcher.endpoints.invalidate(endpoint)
    write = repo.write_outcomes

    def probe_wins_first(conn, rows, attempts):
        with db.connection() as other:  # the other dispatcher: probe succeeded, parked rows released
            repo.record_success(other, endpoint)
        assert repo.release_parked(endpoint) == []  # ours is not written yet
        return write(conn, rows, attempts)

    repo.write_outcomes = probe_wins_first
    envelope = make_envelope(created["session_id"], "message.received", {"n": 1},
                             metadata={"session_uid": created["id"]})
    assert dispatcher.handle([_record(envelope)]) == {"batchItemFailures": []}
    delivery_id = delivery_id_for(envelope["id"], url)
    row, attempts = _rows(db, delivery_id)
    assert attempts == [] and row["status"] == "pending", row  # released, not stranded
    released = [json.loads(e["MessageBody"]) for e in dispatcher.sqs.sent]
    assert [m.get("delivery_id") for m in released if m.get("type") == "webhook.delivery"] == [delivery_id]
