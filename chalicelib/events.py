"""Publishing events (session lifecycle, WhatsApp events) to the events queue.

Every event is first written to `event_outbox`, in the caller's transaction when it has
one, with the session's next sequence number; then sent to SQS and marked sent. If SQS
is down the row stays unsent and `flush_pending()` (run periodically by the runner)
sends it later: an accepted change never loses its event. Delivery is at-least-once;
receivers dedupe on the event id (the webhook-id).

The envelope on the queue is the webhook body: `{"id", "session_id", "event",
"timestamp", "data", "metadata"}`, with `metadata.sequence` for ordering per session and
`metadata.session_uid`, the session row's immutable id: the dispatcher routes an event by
it, so an event of a deleted session never uses the webhook of a new session that reuses
its `session_id`, nor the other way round.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import psycopg

from chalicelib.db import Database
from chalicelib.repositories.events import EventOutboxRepository

SQS_BATCH = 10


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_envelope(session_id: str, event: str, data: dict[str, Any] | None = None, *,
                  metadata: dict[str, Any] | None = None, sequence: int | None = None) -> dict[str, Any]:
    meta = dict(metadata or {})
    if sequence is not None:
        meta["sequence"] = sequence
    return {
        "id": str(uuid.uuid4()),
        "session_id": session_id,
        "event": event,
        "timestamp": now_iso(),
        "data": data or {},
        "metadata": meta,
    }


class EventPublisher:
    def __init__(self, db: Database, sqs: Any, events_queue_url: Any):
        """`events_queue_url` is a string or a zero-argument callable (resolved lazily)."""
        self.db = db
        self.sqs = sqs
        self._queue_url = events_queue_url
        self.outbox = EventOutboxRepository()

    @property
    def queue_url(self) -> str:
        return self._queue_url() if callable(self._queue_url) else self._queue_url

    def record(self, conn: psycopg.Connection, session_id: str, event: str,
               data: dict[str, Any] | None = None, *, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the event into the outbox inside the caller's transaction; send after commit."""
        owner = self.outbox.next_sequence(conn, session_id)
        metadata = dict(metadata or {})
        if owner is not None:
            metadata["session_uid"] = str(owner["uid"])
        envelope = make_envelope(session_id, event, data, metadata=metadata,
                                 sequence=None if owner is None else owner["seq"])
        self.outbox.insert(conn, envelope)
        return envelope

    def publish(self, session_id: str, event: str, data: dict[str, Any] | None = None, *,
                metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record and send one event now (its own transaction)."""
        with self.db.connection() as conn:
            with conn.transaction():
                envelope = self.record(conn, session_id, event, data, metadata=metadata)
        self.send([envelope])
        return envelope

    def send(self, envelopes: Iterable[dict[str, Any]]) -> int:
        """Send recorded envelopes; mark those SQS took. Never raises on a queue outage."""
        sent = self._hand_to_sqs(list(envelopes))
        if sent:
            try:
                with self.db.connection() as conn:
                    self.outbox.mark_sent(conn, sent)
            except Exception:  # noqa: BLE001 - worst case a duplicate later; receivers dedupe
                pass
        return len(sent)

    def _hand_to_sqs(self, envelopes: list[dict[str, Any]]) -> list[str]:
        """The ids of the envelopes SQS took (batches of 10; a failed batch is skipped)."""
        sent: list[str] = []
        for start in range(0, len(envelopes), SQS_BATCH):
            chunk = envelopes[start:start + SQS_BATCH]
            try:
                answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(i), "MessageBody": json.dumps(e, separators=(",", ":")),
                     "MessageAttributes": {
                         "event": {"DataType": "String", "StringValue": e["event"]},
                         "session_id": {"DataType": "String", "StringValue": e["session_id"]}}}
                    for i, e in enumerate(chunk)])
            except Exception:  # noqa: BLE001 - the outbox keeps them; the sweeper resends
                continue
            sent.extend(chunk[int(ok["Id"])]["id"] for ok in answer.get("Successful", []))
        return sent

    def flush_pending(self, older_than_seconds: float = 5.0, limit: int = 500) -> int:
        """Send outbox rows that were not sent (SQS was down); returns how many went out.
        The rows stay locked from the read to their `sent_at`, so of several runners sweeping
        at once each row is sent by one."""
        with self.db.connection() as conn:
            with conn.transaction():
                pending = self.outbox.claim_unsent(conn, older_than_seconds, limit)
                sent = self._hand_to_sqs(pending) if pending else []
                self.outbox.mark_sent(conn, sent)
        return len(sent)
