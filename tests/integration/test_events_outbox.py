"""Events are never lost: written to the outbox with the change, sent when SQS answers."""
from __future__ import annotations

import json

from chalicelib.aws_clients import make_client
from chalicelib.config import load_settings
from chalicelib.events import EventPublisher


def _unsent(db, session_id):
    with db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_id = %s AND sent_at IS NULL",
                            (session_id,)).fetchone()["n"]


def test_an_event_accepted_while_sqs_is_down_is_sent_later(stack, db, container, make_session):
    created = make_session()
    sid = created["session_id"]
    dead_sqs = make_client("sqs", load_settings({**stack.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}),
                           connect_timeout=1, max_attempts=1)
    down = EventPublisher(db, dead_sqs, "http://127.0.0.1:9/000000000000/nowhere")
    envelope = down.publish(sid, "session.test", {"n": 1})  # must not raise
    assert _unsent(db, sid) == 1
    assert envelope["metadata"]["sequence"] == 2  # after session.created

    # SQS is back: the sweeper sends it, once. (A queue of its own, so the check does not
    # have to search, and disturb, the suite's shared events queue.)
    sqs = container.sqs
    url = sqs.create_queue(QueueName=f"outbox-{sid}")["QueueUrl"]
    try:
        back = EventPublisher(db, sqs, url)
        assert back.flush_pending(older_than_seconds=0) >= 1
        assert _unsent(db, sid) == 0
        assert back.flush_pending(older_than_seconds=0) == 0  # nothing twice
        bodies = []
        for _ in range(10):
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            bodies += [json.loads(m["Body"]) for m in messages]
            if any(b["id"] == envelope["id"] for b in bodies):
                break
        assert [b for b in bodies if b["id"] == envelope["id"]] == [envelope]
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_sequence_numbers_grow_per_session(container, make_session):
    a, b = make_session(), make_session()
    seq_a = [container.events.publish(a["session_id"], "x.y")["metadata"]["sequence"] for _ in range(3)]
    seq_b = [container.events.publish(b["session_id"], "x.y")["metadata"]["sequence"] for _ in range(2)]
    assert seq_a == [2, 3, 4] and seq_b == [2, 3]
