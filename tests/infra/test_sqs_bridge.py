"""The local SQS -> Lambda bridge, against real LocalStack queues and a real Chalice app."""
from __future__ import annotations

import json
import time
import types
import uuid

import pytest
from chalice import Chalice

from chalicelib.aws_clients import make_client
from devstack.sqs_bridge import SqsBridge


def _make_app(queue_name: str):
    """A Chalice app whose handler reports failures per record, or crashes on 'crash'."""
    app = Chalice(app_name="bridge-test")
    seen: list[dict] = []

    @app.on_sqs_message(queue=queue_name, batch_size=10)
    def consume(event):
        failures = []
        for record in event:
            seen.append({"body": record.body, "raw": record.to_dict()})
            if record.body == "crash":
                raise RuntimeError("poison message")
            if record.body.startswith("fail"):
                failures.append({"itemIdentifier": record.to_dict()["messageId"]})
        return {"batchItemFailures": failures}

    module = types.SimpleNamespace(app=app, consume=consume)
    return app, module, seen


@pytest.fixture
def queues(stack, settings):
    sqs = make_client("sqs", settings)
    name = f"bridge-{uuid.uuid4().hex[:8]}"
    dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
    })["QueueUrl"]
    yield sqs, name, url, dlq
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq)


def _send(sqs, url, *bodies):
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": b, "MessageAttributes": {
                "kind": {"DataType": "String", "StringValue": "test"}}}
            for i, b in enumerate(bodies[start:start + 10])])


def _drain(bridge, source, until, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bridge.poll_once(source, wait_seconds=1)
        if until():
            return
    raise AssertionError("condition not reached before the timeout")


def _visible(sqs, url) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_records_look_like_aws_and_success_deletes(queues, settings):
    sqs, name, url, _ = queues
    app, module, seen = _make_app(name)
    bridge = SqsBridge(app, module, sqs, region=settings.aws_region)
    [source] = bridge.sources()
    _send(sqs, url, "a", "b", "c")
    _drain(bridge, source, lambda: len(seen) >= 3)
    records = [s["raw"] for s in seen]
    assert sorted(s["body"] for s in seen) == ["a", "b", "c"]
    assert len({r["messageId"] for r in records}) == 3  # each record its own id
    for r in records:
        assert r["eventSource"] == "aws:sqs"
        assert r["eventSourceARN"].endswith(":" + name)
        assert r["receiptHandle"] and r["md5OfBody"]
        assert r["attributes"]["ApproximateReceiveCount"] == "1"
        assert "SentTimestamp" in r["attributes"]
        assert r["messageAttributes"]["kind"]["stringValue"] == "test"
        assert r["awsRegion"] == settings.aws_region
    assert _visible(sqs, url) == 0


def test_one_failed_record_is_redelivered_alone(queues, settings):
    sqs, name, url, _ = queues
    app, module, seen = _make_app(name)
    bridge = SqsBridge(app, module, sqs)
    [source] = bridge.sources()
    _send(sqs, url, "ok-1", "fail-1", "ok-2")
    _drain(bridge, source, lambda: [s["body"] for s in seen].count("fail-1") >= 2)
    bodies = [s["body"] for s in seen]
    assert bodies.count("ok-1") == 1 and bodies.count("ok-2") == 1  # never redelivered
    second = [s["raw"] for s in seen if s["body"] == "fail-1"][1]
    assert second["attributes"]["ApproximateReceiveCount"] == "2"


def test_a_crashing_handler_redelivers_its_batch_then_the_dlq_takes_it(queues, settings):
    sqs, name, url, dlq = queues
    app, module, seen = _make_app(name)
    bridge = SqsBridge(app, module, sqs, log=lambda m: None)
    [source] = bridge.sources()
    _send(sqs, url, "crash")
    outcome = bridge.poll_once(source, wait_seconds=2)
    assert outcome.crashed and outcome.deleted == 0
    # maxReceiveCount=2: received twice, then the next receive moves it to the DLQ (as AWS).
    _drain(bridge, source, lambda: _visible(sqs, dlq) == 1)
    assert [s["body"] for s in seen].count("crash") == 2
    moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"]
    assert moved[0]["Body"] == "crash"


def test_running_bridge_threads_stop_on_request(queues, settings):
    import threading

    sqs, name, url, _ = queues
    app, module, seen = _make_app(name)
    bridge = SqsBridge(app, module, sqs, wait_seconds=1, pollers_per_queue=2)
    stop = threading.Event()
    threads = bridge.run(stop)
    try:
        _send(sqs, url, *[f"m{i}" for i in range(25)])
        deadline = time.monotonic() + 20
        while len({s["body"] for s in seen}) < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
    assert len({s["body"] for s in seen}) == 25
    assert not any(t.is_alive() for t in threads)
