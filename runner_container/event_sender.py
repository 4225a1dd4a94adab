"""Sends the runner's recorded events to the events queue off the session threads.

The event is already committed in the outbox when it gets here, so sending it later (in
batches of up to 10 per SendMessageBatch) costs nothing in durability and takes one SQS
round trip per event off every state change and command; `flush_pending()` still
resends anything this sender could not.
"""
from __future__ import annotations

from typing import Any

from chalicelib.events import SQS_BATCH, EventPublisher
from runner_container.batching import BatchingThread


class EventSender:
    def __init__(self, events: EventPublisher, logger: Any = None):
        self.events = events
        self.log = logger
        self._thread = BatchingThread("event-sender", self._send, max_items=SQS_BATCH * 5)

    def send(self, envelopes: list[dict[str, Any]]) -> None:
        for envelope in envelopes:
            self._thread.put(envelope)

    def close(self, timeout: float = 10.0) -> None:
        self._thread.close(timeout)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        try:
            self.events.send(batch)  # never raises on a queue outage; the outbox keeps them
        except Exception as exc:  # noqa: BLE001 - database hiccup marking them sent: resent later
            if self.log:
                self.log.warning("event send failed", extra={"reason": str(exc)[:200]})
