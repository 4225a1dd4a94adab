"""Dispatcher paths driven directly (no bridge): long delays chained, lost outcomes, per-record isolation."""
from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.events import make_envelope
from chalicelib.webhooks.dispatcher import DELIVERY_MESSAGE, delivery_id_for, delivery_message
from tests.support.sqs import RecordingSqs


@pytest.fixture
def container(settings):
    instance = Container(dataclasses.replace(settings, webhook_retry_schedule=(1.0, 2.0), webhook_retry_count=2))
    reset_container(instance)
    yield instance
    reset_container(None)


def _record(body) -> dict:
    return {"messageId": str(uuid.uuid4()), "body": json.dumps(body), "attributes": {"ApproximateReceiveCount": "1"}}


def test_delays_longer_than_15_minutes_are_chained(container):
    dispatcher = container.webhook_dispatcher
    recording = RecordingSqs()
    dispatcher.sqs = recording
    message = delivery_message(str(uuid.uuid4()), 3, 5 * 3600)  # Svix's 5 h step
    assert dispatcher.handle([_record(message)]) == {"batchItemFailures": []}
    [entry] = recording.sent
    assert entry["DelaySeconds"] == 900  # SQS's maximum; it comes back and is sent on again
    assert json.loads(entry["MessageBody"]) == message
    assert entry["MessageAttributes"]["kind"]["StringValue"] == DELIVERY_MESSAGE


def test_a_lost_outcome_is_retried_by_the_watchdog(container, make_session, db):
    created = make_session(webhook={"url": "http://127.0.0.1:9/lost", "events": ["message.*"]})
    envelope = make_envelope(created["session_id"], "message.received", {})
    delivery_id = delivery_id_for(envelope["id"], "http://127.0.0.1:9/lost")
    with db.connection() as conn:  # what a dispatcher that died mid-attempt leaves behind
        conn.execute("INSERT INTO webhook_deliveries (id, event_id, session_id, session_uid, event, url, status, "
                     "attempt, round_attempt, payload, last_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, "
                     "'delivering', 1, 1, %s, now())",
                     (delivery_id, envelope["id"], created["session_id"], created["id"], envelope["event"],
                      "http://127.0.0.1:9/lost", json.dumps(envelope)))
    dispatcher = container.webhook_dispatcher
    recording = RecordingSqs()
    dispatcher.sqs = recording
    watchdog = {**delivery_message(delivery_id, 1, 0), "watchdog": True}
    dispatcher.handle([_record(watchdog)])
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM webhook_deliveries WHERE id = %s", (delivery_id,)).fetchone()
        attempts = conn.execute("SELECT * FROM webhook_attempts WHERE delivery_id = %s", (delivery_id,)).fetchall()
    assert row["status"] == "retrying" and row["attempt"] == 1 and "lost" in row["error"]
    assert [a["outcome"] for a in attempts] == ["retry"]
    [entry] = recording.sent
    assert json.loads(entry["MessageBody"])["attempt"] == 2 and 1 <= entry["DelaySeconds"] <= 2
    # the same watchdog again (an SQS duplicate) changes nothing
    recording.sent.clear()
    dispatcher.handle([_record(watchdog)])
    assert recording.sent == []


def test_unreadable_records_do_not_hold_back_the_others(container, make_session, db):
    created = make_session(webhook={"url": "http://127.0.0.1:9/x", "events": ["message.*"]})
    dispatcher = container.webhook_dispatcher
    recording = RecordingSqs()
    dispatcher.sqs = recording
    good = make_envelope(created["session_id"], "message.received", {})
    records = [{"messageId": "bad-1", "body": "{not json", "attributes": {}}, _record(good),
               {"messageId": "bad-2", "body": json.dumps({"type": DELIVERY_MESSAGE, "delivery_id": "nope"}),
                "attributes": {}}]
    answer = dispatcher.handle(records)
    assert answer == {"batchItemFailures": []}  # never raise, never fail the batch for a record
    dlq = [e for e in recording.sent if "reason" in e.get("MessageAttributes", {})]
    assert sorted(e["MessageAttributes"]["source_message_id"]["StringValue"] for e in dlq) == ["bad-1", "bad-2"]
    with db.connection() as conn:
        row = conn.execute("SELECT status, error FROM webhook_deliveries WHERE event_id = %s", (good["id"],)).fetchone()
    assert row["status"] == "retrying" and "connection failed" in row["error"]  # port 9: refused, retried
