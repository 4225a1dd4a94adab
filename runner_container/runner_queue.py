"""The runner's own command queue: routing follows placement (issue 18).

Each runner creates an SQS FIFO queue of its own at start, `<QUEUE_PREFIX>-runner-<16 hex
of sha256(runner id)>.fifo` (redrive to `<QUEUE_PREFIX>-commands-dlq.fifo`), and publishes
its URL in its `runners` row. The API sends a command to the queue of the runner holding
the session's slot (the URL comes back from the command's INSERT, no extra round trip).

A message for a slot this runner no longer holds is forwarded to the current holder's
queue, then deleted; with no holder (the slot is between runners) it is deleted: the
runner that takes the slot runs the slot's backlog from the `commands` table, which stays
the truth. A queue that disappears (LocalStack restarted without state; on AWS an operator
deleted it) is created again and republished. The queue of a runner gone for longer than
`DEAD_QUEUE_AFTER` is drained (forwarded) and deleted by a survivor.

Same attributes as the fixed shard queues had before placement: FIFO, deduplication and throughput per message
group (= session), visibility 60 s, 4 days retention, five receives before the DLQ.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

VISIBILITY_TIMEOUT = 60
RETENTION_SECONDS = 345_600
MAX_RECEIVE_COUNT = 5
DEAD_QUEUE_AFTER = 600.0  # seconds a runner is gone before its queue is drained and deleted

Route = Callable[[str], "tuple[str | None, str | None]"]  # session_id -> (holder, queue url)


def runner_queue_name(prefix: str, runner_id: str) -> str:
    """Short and valid for any runner id (SQS names: 80 characters, [A-Za-z0-9_-], .fifo)."""
    return f"{prefix}-runner-{hashlib.sha256(runner_id.encode()).hexdigest()[:16]}.fifo"


def is_missing_queue(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return "NonExistentQueue" in code or "QueueDoesNotExist" in code or "QueueDoesNotExist" in str(exc)


class RunnerQueue:
    def __init__(self, sqs: Any, *, prefix: str, runner_id: str, dlq_name: str, log: Any = None):
        self.sqs = sqs
        self.name = runner_queue_name(prefix, runner_id)
        self.dlq_name = dlq_name
        self.log = log
        self.url: str | None = None

    def create(self) -> str:
        """Create (or find) the queue; with its redrive when the DLQ exists."""
        attributes = {"FifoQueue": "true", "ContentBasedDeduplication": "false",
                      "DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perMessageGroupId",
                      "VisibilityTimeout": str(VISIBILITY_TIMEOUT), "MessageRetentionPeriod": str(RETENTION_SECONDS)}
        try:
            dlq_url = self.sqs.get_queue_url(QueueName=self.dlq_name)["QueueUrl"]
            dlq_arn = self.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arn,
                                                      "maxReceiveCount": MAX_RECEIVE_COUNT})
        except Exception as exc:  # noqa: BLE001 - a queue without its DLQ still carries commands
            if self.log:
                self.log.warning("commands DLQ not found; runner queue created without redrive",
                                 extra={"dlq": self.dlq_name, "reason": str(exc)[:200]})
        self.url = self.sqs.create_queue(QueueName=self.name, Attributes=attributes)["QueueUrl"]
        return self.url

    def forward(self, route: Route, me: str, body: dict[str, Any]) -> str | None:
        """Send a command message to the runner holding its session now; the holder's id, or
        None when no other runner holds it (then the message is only deleted)."""
        holder, url = route(body["session_id"])
        if holder is None or holder == me or not url:
            return None
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body, separators=(",", ":")),
                              MessageGroupId=body["session_id"], MessageDeduplicationId=body["command_id"])
        return holder


def drain_and_delete(sqs: Any, queue_url: str, route: Route, log: Any = None, rounds: int = 50) -> bool:
    """Forward what a gone runner's queue still holds to the holders now, then delete it.
    True once the queue is gone; False when `rounds` x 10 messages were not all (the rest
    waits for the next call)."""
    for _ in range(rounds):
        try:
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                         VisibilityTimeout=30)
        except Exception as exc:
            if is_missing_queue(exc):
                return True
            raise
        messages = answer.get("Messages", [])
        if not messages:
            sqs.delete_queue(QueueUrl=queue_url)
            return True
        for message in messages:
            try:
                body = json.loads(message["Body"])
                holder, url = route(str(body["session_id"]))
                if holder and url and url != queue_url:
                    sqs.send_message(QueueUrl=url, MessageBody=message["Body"], MessageGroupId=body["session_id"],
                                     MessageDeduplicationId=str(body["command_id"]))
            except (ValueError, KeyError, TypeError):
                if log:
                    log.error("malformed command message dropped from a gone runner's queue")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return False
