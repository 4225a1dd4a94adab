"""Deletes received command messages from the runner's FIFO queue off the session threads.

A command's SQS message has done its job once the runner has claimed the command's row:
from then on the table carries it (a runner that dies mid-command leaves it `running`
and the runner that takes its slot over runs it again from its backlog scan). So the actor
acknowledges a command right after the claim, and the deletes go out here, batched with
DeleteMessageBatch (up to 10 per call, per queue): SQS FIFO holds a session's next
message back until the previous one is deleted, so an early, cheap delete lets the poller
fetch the session's next command while this one runs, and takes an SQS round trip off
every command's path. A delete that fails is harmless: the message comes back after its
visibility timeout and the claim turns it into a no-op.
"""
from __future__ import annotations

from typing import Any

from runner_container.batching import BatchingThread

BATCH = 10


class SqsAcker:
    def __init__(self, sqs: Any, logger: Any = None):
        self.sqs = sqs
        self.log = logger
        self._thread = BatchingThread("sqs-acker", self._delete_all, max_items=BATCH * 5)

    def ack(self, url: str, receipt: str) -> None:
        self._thread.put((url, receipt))

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop."""
        self._thread.close(timeout)

    def _delete_all(self, items: list[tuple[str, str]]) -> None:
        by_queue: dict[str, list[str]] = {}
        for url, receipt in items:
            by_queue.setdefault(url, []).append(receipt)
        for url, receipts in by_queue.items():
            for start in range(0, len(receipts), BATCH):
                self._delete(url, receipts[start:start + BATCH])

    def _delete(self, url: str, receipts: list[str]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)]
        try:
            answer = self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            failed = answer.get("Failed") or []
        except Exception as exc:  # noqa: BLE001 - redelivered later; the claim makes it a no-op
            failed = entries
            reason = str(exc)[:200]
        else:
            reason = "; ".join(f.get("Message", f.get("Code", "")) for f in failed)[:200]
        if failed and self.log:
            self.log.warning("command delete failed", extra={"messages": len(failed), "reason": reason})
