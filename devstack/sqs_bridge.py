"""Plays Lambda's SQS event-source mapping for every `@app.on_sqs_message` handler.

`chalice local` serves HTTP only (aws/chalice#899), so locally this bridge long-polls each
handler's queue, builds the event dict exactly as AWS builds it (one record per message,
with its own messageId, receiptHandle, attributes, messageAttributes, md5OfBody,
eventSourceARN), invokes the handler with a Lambda-like context and then:

- handler returned normally: deletes every record, except those it names in
  `{"batchItemFailures": [{"itemIdentifier": <messageId>}]}` (ReportBatchItemFailures);
- handler raised: deletes nothing; the whole batch becomes visible again after the
  queue's visibility timeout, and the queue's redrive policy moves a message to its DLQ
  after maxReceiveCount receives, as on AWS.
"""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from chalice import Chalice
from chalice.app import SQSEventConfig


@dataclass
class LocalLambdaContext:
    """The attributes handlers and Powertools read from a Lambda context."""

    function_name: str
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass
class BatchOutcome:
    received: int = 0
    deleted: int = 0
    failed: int = 0
    crashed: bool = False


def build_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The `Records` event AWS gives a Lambda for an SQS batch."""
    records = []
    for message in messages:
        attributes = dict(message.get("Attributes", {}))
        records.append({
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "messageAttributes": {
                name: {
                    "stringValue": value.get("StringValue"),
                    "binaryValue": value.get("BinaryValue"),
                    "stringListValues": value.get("StringListValues", []),
                    "binaryListValues": value.get("BinaryListValues", []),
                    "dataType": value.get("DataType"),
                }
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        })
    return {"Records": records}


class SqsBridge:
    def __init__(self, app: Chalice, app_module: Any, sqs: Any, *,
                 queue_url_for: Callable[[str], str] | None = None,
                 wait_seconds: int = 5, pollers_per_queue: int = 1,
                 region: str = "us-east-1", log: Callable[[str], None] = print,
                 report_batch_item_failures: bool = True):
        self.app = app
        self.app_module = app_module
        self.sqs = sqs
        self.queue_url_for = queue_url_for or (lambda name: sqs.get_queue_url(QueueName=name)["QueueUrl"])
        self.wait_seconds = wait_seconds
        self.pollers_per_queue = pollers_per_queue
        self.region = region
        self.log = log
        self.report_batch_item_failures = report_batch_item_failures
        self._arns: dict[str, str] = {}

    def sources(self) -> list[SQSEventConfig]:
        return [s for s in self.app.event_sources if isinstance(s, SQSEventConfig)]

    def _queue_url(self, source: SQSEventConfig) -> str:
        name = source.queue or (source.queue_arn or "").rsplit(":", 1)[-1]
        return self.queue_url_for(name)

    def _queue_arn(self, url: str) -> str:
        if url not in self._arns:
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            self._arns[url] = attrs["Attributes"]["QueueArn"]
        return self._arns[url]

    def poll_once(self, source: SQSEventConfig, wait_seconds: int | None = None) -> BatchOutcome:
        """One ReceiveMessage -> one handler invocation -> deletes. Returns what happened."""
        url = self._queue_url(source)
        response = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(source.batch_size, 10)),
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        outcome = BatchOutcome(received=len(messages))
        if not messages:
            return outcome
        event = build_event(messages, self._queue_arn(url), self.region)
        handler = getattr(self.app_module, source.handler_string.rsplit(".", 1)[-1])
        try:
            result = handler(event, LocalLambdaContext(function_name=f"{self.app.app_name}-{source.name}"))
        except Exception:  # noqa: BLE001 - as Lambda: the batch is retried, nothing deleted
            outcome.crashed = True
            outcome.failed = len(messages)
            self.log(f"handler {source.name} raised; {len(messages)} message(s) left for redelivery\n"
                     + traceback.format_exc(limit=5))
            return outcome
        failed_ids: set[str] = set()
        if self.report_batch_item_failures and isinstance(result, dict):
            failed_ids = {item.get("itemIdentifier") for item in result.get("batchItemFailures", []) or []}
        to_delete = [m for m in messages if m["MessageId"] not in failed_ids]
        outcome.failed = len(messages) - len(to_delete)
        for start in range(0, len(to_delete), 10):
            chunk = to_delete[start:start + 10]
            deleted = self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            outcome.deleted += len(deleted.get("Successful", []))
        return outcome

    def run(self, stop: threading.Event) -> list[threading.Thread]:
        """Start the pollers in daemon threads; they end soon after `stop` is set."""
        threads = []
        for source in self.sources():
            for index in range(self.pollers_per_queue):
                thread = threading.Thread(target=self._loop, args=(source, stop),
                                          name=f"sqs-bridge-{source.name}-{index}", daemon=True)
                thread.start()
                threads.append(thread)
        return threads

    def _loop(self, source: SQSEventConfig, stop: threading.Event) -> None:
        backoff = 0.5
        while not stop.is_set():
            try:
                self.poll_once(source)
                backoff = 0.5
            except Exception as exc:  # noqa: BLE001 - a queue outage must not end the bridge
                self.log(f"bridge poll of {source.name} failed: {exc}; retrying in {backoff:g}s")
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
