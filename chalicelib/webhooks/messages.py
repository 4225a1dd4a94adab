"""What travels on the events queue besides event envelopes: delivery and probe messages.

Shared by the dispatcher (retries, breaker deferrals and probes, chained long delays) and
the API (`WebhookService`: redeliver, `POST /webhooks/send`), so neither imports the other.

- delivery message `{"type": "webhook.delivery", "delivery_id", "attempt", "not_before"}`
  (`"watchdog": true` when it only checks that an attempt still running came back);
- probe message `{"type": "webhook.probe", "session_uid", "url", "not_before"}`: the timer
  of an open circuit breaker.

`parse_record` sorts an SQS record into one of "event", "delivery", "probe" or "poison"
(not JSON, or none of the shapes: moved to the events DLQ).
"""
from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

DELIVERY_MESSAGE = "webhook.delivery"
PROBE_MESSAGE = "webhook.probe"
SQS_MAX_DELAY = 900
_DELIVERY_NS = uuid.UUID("6f1c1f4e-8d3a-4b8e-9f61-3b7f0d2a9c55")
_POISON: tuple[str, Any] = ("poison", None)


def delivery_id_for(event_id: str, url: str) -> str:
    """Deterministic: the same event to the same URL is always the same delivery."""
    return str(uuid.uuid5(_DELIVERY_NS, f"{event_id}|{url}"))


def delivery_message(delivery_id: str, attempt: int, delay: float) -> dict[str, Any]:
    return {"type": DELIVERY_MESSAGE, "delivery_id": delivery_id, "attempt": attempt,
            "not_before": time.time() + max(0.0, delay)}


def probe_message(endpoint: tuple[str, str], delay: float) -> dict[str, Any]:
    """The timer of an open breaker: after the cooldown, one parked delivery probes the endpoint."""
    return {"type": PROBE_MESSAGE, "session_uid": endpoint[0], "url": endpoint[1],
            "not_before": time.time() + max(0.0, delay)}


def send_delivery_messages(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Each message gets DelaySeconds = its remaining delay (at most 15 min; longer ones chain)."""
    now = time.time()
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(m, separators=(",", ":")),
             "DelaySeconds": min(SQS_MAX_DELAY, max(0, math.ceil(m["not_before"] - now))),
             "MessageAttributes": {"kind": {"DataType": "String",
                                            "StringValue": m.get("type", DELIVERY_MESSAGE)}}}
            for i, m in enumerate(chunk)])
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} delivery message(s)")


def parse_record(record: dict[str, Any]) -> tuple[str, Any]:
    """(kind, body): kind is "event", "delivery", "probe" or "poison" (body None)."""
    try:
        body = json.loads(record.get("body") or "")
    except (TypeError, ValueError):
        return _POISON
    if not isinstance(body, dict):
        return _POISON
    kind = body.get("type")
    if kind == PROBE_MESSAGE:
        return _probe(body)
    if kind == DELIVERY_MESSAGE:
        return _delivery(body)
    return _event(body)


def _probe(body: dict[str, Any]) -> tuple[str, Any]:
    ok = all(isinstance(body.get(k), str) and body[k] for k in ("url", "session_uid"))
    return ("probe", body) if ok else _POISON


def _delivery(body: dict[str, Any]) -> tuple[str, Any]:
    if not (isinstance(body.get("delivery_id"), str) and isinstance(body.get("attempt"), int)):
        return _POISON
    return ("delivery", body) if _is_uuid(body["delivery_id"]) else _POISON


def _event(body: dict[str, Any]) -> tuple[str, Any]:
    if not all(isinstance(body.get(k), str) for k in ("id", "session_id", "event")):
        return _POISON
    return ("event", body) if _is_uuid(body["id"]) else _POISON


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
