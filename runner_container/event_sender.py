"""Sends the runner's recorded events to the events queue off the session threads.

The event is already committed in the outbox when it gets here, so sending it later (in
batches of up to 10 per SendMessageBatch) costs nothing in durability and takes one SQS
round trip per event off every state change and command; `flush_pending()` still
resends anything this sender could not.
"""
from __future__ import annotations

import queue
import threading
from typing import Any

from chalicelib.events import SQS_BATCH, EventPublisher


class EventSender:
    def __init__(self, events: EventPublisher, logger: Any = None):
        self.events = events
        self.log = logger
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="event-sender", daemon=True)
        self._thread.start()

    def send(self, envelopes: list[dict[str, Any]]) -> None:
        for envelope in envelopes:
            self._queue.put(envelope)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < SQS_BATCH * 5:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                self.events.send(batch)  # never raises on a queue outage; the outbox keeps them
            except Exception as exc:  # noqa: BLE001 - database hiccup marking them sent: resent later
                if self.log:
                    self.log.warning("event send failed", extra={"reason": str(exc)[:200]})
            if stop:
                return
