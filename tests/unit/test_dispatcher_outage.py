"""The webhook dispatcher when the database does not answer: the batch fails (SQS hands it
back) and comes back in seconds, not after the events queue's 6-minute visibility timeout
(bench/faults.py scenario 3 held deliveries that long after a 5 s PostgreSQL stop)."""
from __future__ import annotations

import json

import pytest

from chalicelib.errors import DependencyUnavailable
from chalicelib.events import make_envelope
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.webhooks.breaker import BreakerConfig
from chalicelib.webhooks.dispatcher import WebhookDispatcher, outage_backoff
from chalicelib.webhooks.retry import RetryPolicy


class _DatabaseDown:
    db = None

    def __getattr__(self, name):
        def down(*_args, **_kwargs):
            raise DependencyUnavailable("database did not answer within 5s")
        return down


class _Sqs:
    def __init__(self):
        self.calls = []

    def change_message_visibility_batch(self, **kwargs):
        self.calls.append(kwargs)


def _record(n: int, received: int) -> dict:
    return {"messageId": f"m{n}", "receiptHandle": f"rh{n}", "attributes": {"ApproximateReceiveCount": str(received)},
            "body": json.dumps(make_envelope(f"ses-{n}", "message.received", {"n": n}))}


def test_a_batch_that_meets_a_dead_database_comes_back_in_seconds():
    sqs = _Sqs()
    dispatcher = WebhookDispatcher(
        repo=_DatabaseDown(), sqs=sqs, events_queue_url=lambda: "http://sqs/events", dlq_url=lambda: "http://sqs/dlq",
        secret_box=lambda: None, policy=RetryPolicy.from_settings((1.0, 2.0), 2),
        breaker_config=BreakerConfig(threshold=5, cooldown=30.0), timeout=1.0, net_policy=NetPolicy(),
        db=object(), max_workers=1)
    records = [_record(n, received=1 + n % 2) for n in range(12)]
    with pytest.raises(DependencyUnavailable):
        dispatcher.handle(records)  # the batch fails: nothing is deleted, nothing is lost
    entries = [e for call in sqs.calls for e in call["Entries"]]
    assert all(call["QueueUrl"] == "http://sqs/events" for call in sqs.calls) and len(sqs.calls) == 2
    assert [e["ReceiptHandle"] for e in entries] == [f"rh{n}" for n in range(12)]
    assert [e["VisibilityTimeout"] for e in entries[:2]] == [15, 60]  # by receive count, not 360 s


def test_the_outage_backoff_grows_to_fifteen_minutes():
    assert [outage_backoff({"attributes": {"ApproximateReceiveCount": str(n)}}) for n in range(1, 7)] == \
        [15, 60, 240, 900, 900, 900]
    assert outage_backoff({}) == 15
