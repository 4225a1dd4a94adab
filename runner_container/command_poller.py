"""The long-poll thread on the runner's own command queue (`runner_queue.py`).

Each message names a command; the supervisor's `dispatch` decides: post it to the
session's actor (this runner holds the slot), forward it to the holder, or drop it (the
slot is between runners: its next holder runs the backlog from the table). A queue that
vanished is created again; SQS down means backing off while the doorbell and the table's
backlog scan carry the commands.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from runner_container.runner_queue import RunnerQueue, is_missing_queue

POLL_WAIT_SECONDS = 2  # an SQS long poll; a stop waits for the current one to end

Dispatch = Callable[[dict[str, Any], Callable[[], None]], None]  # (body, ack)


class CommandPoller:
    def __init__(self, sqs: Any, queue: RunnerQueue, dispatch: Dispatch, *, ack: Callable[[str, str], None],
                 republish: Callable[[str], None], metrics: Any, log: Any):
        self.sqs = sqs
        self.queue = queue
        self.dispatch = dispatch
        self.ack = ack
        self.republish = republish
        self.metrics = metrics
        self.log = log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Let the current long poll end: a ReceiveMessage abandoned mid-wait can still take
        the next message, which then stays invisible for the visibility timeout."""
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join(timeout=POLL_WAIT_SECONDS + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            url = self.queue.url
            if url is None:
                self._reopen()
                continue
            try:
                answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=POLL_WAIT_SECONDS, AttributeNames=["SentTimestamp"])
            except Exception as exc:  # noqa: BLE001 - SQS down: back off, the DB backlog scan covers us
                if is_missing_queue(exc):
                    self.log.warning("runner command queue is gone; creating it again", extra={"queue": self.queue.name})
                    self.queue.url = None
                    continue
                self.log.warning("command poll failed", extra={"reason": str(exc)[:200]})
                self._stop.wait(2.0)
                continue
            for message in answer.get("Messages", []):
                self._handle(url, message)

    def _reopen(self) -> None:
        try:
            self.republish(self.queue.create())
        except Exception as exc:  # noqa: BLE001 - retried; commands come by the doorbell and the backlog meanwhile
            self.log.warning("could not create the runner command queue", extra={"reason": str(exc)[:200]})
            self._stop.wait(2.0)

    def _handle(self, url: str, message: dict[str, Any]) -> None:
        sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", 0) or 0)
        if sent_ms:
            self.metrics.queue_lag.observe(max(0.0, time.time() - sent_ms / 1000))
        receipt = message["ReceiptHandle"]
        try:
            body = json.loads(message["Body"])
            body["command_id"], body["session_id"] = str(body["command_id"]), str(body["session_id"])
        except (ValueError, KeyError, TypeError):
            self.log.error("malformed command message dropped")
            self.ack(url, receipt)
            return
        self.dispatch(body, lambda: self.ack(url, receipt))
