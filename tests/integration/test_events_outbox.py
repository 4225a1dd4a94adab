"""Events are never lost: written to the outbox with the change, sent when SQS answers."""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

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


class _HeldSqs:
    """Forwards to a real SQS client; the first send_message_batch waits until released, so
    a second sweeper runs while the first is between its read and its `sent_at`."""

    def __init__(self, sqs):
        self.sqs = sqs
        self.entered = threading.Event()
        self.release = threading.Event()
        self.sent_ids: list[str] = []

    def send_message_batch(self, **kwargs):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        self.sent_ids += [json.loads(e["MessageBody"])["id"] for e in kwargs["Entries"]]
        return self.sqs.send_message_batch(**kwargs)


def test_two_runners_sweeping_at_once_send_each_unsent_event_once(stack, db, container, make_session):
    """Every runner runs `flush_pending`; after an SQS outage both found the same backlog and
    both sent it (bench/faults.py scenario 4: 250 of 479 events delivered twice)."""
    sid = make_session()["session_id"]
    dead_sqs = make_client("sqs", load_settings({**stack.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}),
                           connect_timeout=1, max_attempts=1)
    down = EventPublisher(db, dead_sqs, "http://127.0.0.1:9/000000000000/nowhere")
    ids = {down.publish(sid, "session.test", {"n": n})["id"] for n in range(3)}
    assert _unsent(db, sid) == 3

    url = container.sqs.create_queue(QueueName=f"outbox2-{sid}")["QueueUrl"]
    try:
        first, second = _HeldSqs(container.sqs), _HeldSqs(container.sqs)
        second.entered.set()  # the second sweeper is never held
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(EventPublisher(db, first, url).flush_pending, 0)
            assert first.entered.wait(30)
            EventPublisher(db, second, url).flush_pending(0)  # while the first holds its rows
            first.release.set()
            held.result(timeout=30)
        assert _unsent(db, sid) == 0
        assert ids <= set(first.sent_ids)
        assert ids.isdisjoint(second.sent_ids)
    finally:
        container.sqs.delete_queue(QueueUrl=url)
