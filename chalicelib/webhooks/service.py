"""The API side of webhooks: deliveries (list, read, redeliver), test sends, secret rotation, stats."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from chalicelib.crypto import SecretBox
from chalicelib.errors import Conflict, DependencyUnavailable, NotFound, SessionNotFound
from chalicelib.events import make_envelope
from chalicelib.queues import QueueDirectory
from chalicelib.repositories.webhooks import WebhookRepository
from chalicelib.schemas.webhooks import BulkRedeliverRequest, DeliveriesQuery, SendWebhookRequest
from chalicelib.services.sessions import generate_webhook_secret
from chalicelib.webhooks.messages import delivery_id_for, delivery_message, send_delivery_messages

ROTATION_GRACE_SECONDS = 24 * 3600.0
MAX_PREVIOUS_SECRETS = 5  # each adds a `v1,` signature (44 bytes) to every delivery
STATS_WINDOW_SECONDS = 24 * 3600


class WebhookService:
    def __init__(self, repo: WebhookRepository, queues: QueueDirectory, secret_box: Callable[[], SecretBox],
                 check_url: Callable[[str], None], session_exists: Callable[[str], dict | None]):
        self.repo = repo
        self.queues = queues
        self._secret_box = secret_box
        self.check_url = check_url
        self._session = session_exists

    def _require_session(self, session_id: str) -> dict[str, Any]:
        row = self._session(session_id)
        if row is None:
            raise SessionNotFound(session_id)
        return row

    def _enqueue(self, messages: list[dict[str, Any]]) -> None:
        try:
            send_delivery_messages(self.queues.sqs, self.queues.events_url, messages)
        except Exception as exc:
            raise DependencyUnavailable("the events queue did not take the delivery",
                                        code="queue_unavailable") from exc

    # -- deliveries ---------------------------------------------------------------------
    def list_deliveries(self, session_id: str, query: DeliveriesQuery) -> dict[str, Any]:
        self._require_session(session_id)
        rows, total = self.repo.list_deliveries(session_id, status=query.status, event=query.event,
                                                since=query.since, limit=query.limit, offset=query.offset)
        return {"deliveries": [delivery_view(r) for r in rows], "total": total,
                "limit": query.limit, "offset": query.offset}

    def get_delivery(self, session_id: str, delivery_id: str) -> dict[str, Any]:
        row = self.repo.get_delivery(session_id, _uuid(delivery_id))
        if row is None:
            raise NotFound(f"delivery '{delivery_id}' does not exist", code="delivery_not_found")
        view = delivery_view(row, payload=True)
        view["attempts"] = row["attempts"]
        return view

    def redeliver(self, session_id: str, delivery_id: str) -> dict[str, Any]:
        self._require_session(session_id)
        row = self.repo.mark_pending(session_id, _uuid(delivery_id))
        if row is None:
            if self.repo.get_delivery(session_id, _uuid(delivery_id)) is None:
                raise NotFound(f"delivery '{delivery_id}' does not exist", code="delivery_not_found")
            raise Conflict("the delivery is still in progress; redeliver it once it has succeeded or failed",
                           code="delivery_in_progress")
        endpoint = (str(row["session_uid"]), row["url"])
        self._enqueue([delivery_message(str(row["id"]), row["attempt"] + 1, 0)] + self._reenable(endpoint))
        return {"delivery_id": str(row["id"]), "status": "pending"}

    def redeliver_bulk(self, session_id: str, request: BulkRedeliverRequest) -> dict[str, Any]:
        self._require_session(session_id)
        rows = self.repo.mark_pending_bulk(session_id, statuses=[request.status], since=request.since,
                                           event=request.event, limit=request.limit)
        released: list[dict[str, Any]] = []
        for endpoint in {(str(r["session_uid"]), r["url"]) for r in rows}:
            released += self._reenable(endpoint)
        if rows or released:
            self._enqueue([delivery_message(str(r["id"]), r["attempt"] + 1, 0) for r in rows] + released)
        return {"count": len(rows), "delivery_ids": [str(r["id"]) for r in rows]}

    def _reenable(self, endpoint: tuple[str, str]) -> list[dict[str, Any]]:
        """An explicit redeliver re-enables this session's disabled or open endpoint (never
        another session's breaker on the same URL) and releases what waits for it."""
        if not self.repo.enable(endpoint):
            return []
        return [delivery_message(str(r["id"]), r["attempt"] + 1, 0) for r in self.repo.release_parked(endpoint)]

    # -- sends --------------------------------------------------------------------------
    def send(self, request: SendWebhookRequest) -> dict[str, Any]:
        session = self._require_session(request.session_id)
        if not session.get("webhook_secret_enc"):
            raise Conflict(f"session '{request.session_id}' has no webhook secret; configure its webhook first",
                           code="webhook_not_configured")
        if request.url:
            self.check_url(request.url)
            url, target = request.url, "custom"
        elif session.get("webhook_url"):
            url, target = session["webhook_url"], "session"
        else:
            raise Conflict(f"session '{request.session_id}' has no webhook URL; give 'url'",
                           code="webhook_not_configured")
        owner = str(session["id"])
        envelope = make_envelope(request.session_id, request.event, request.data,
                                 metadata={"manual": True, "session_uid": owner})
        row = self.repo.create_pending({
            "id": delivery_id_for(envelope["id"], url), "event_id": envelope["id"],
            "session_id": request.session_id, "session_uid": owner, "event": request.event, "url": url, "payload": envelope,
            "enqueued_at": envelope["timestamp"], "target": target})
        self._enqueue([delivery_message(str(row["id"]), 1, 0)])
        return {"delivery_id": str(row["id"]), "event_id": envelope["id"], "url": url, "status": "pending"}

    # -- secrets ------------------------------------------------------------------------
    def rotate_secret(self, session_id: str) -> dict[str, Any]:
        """A new secret; every previous secret keeps signing until the expiry its own
        rotation answer stated (ROTATION_GRACE_SECONDS after it was replaced), so a
        receiver on any of them keeps verifying. At most MAX_PREVIOUS_SECRETS previous
        secrets live at once: one rotation more is refused (409) until the oldest expires,
        because shortening a stated expiry would break that answer's promise.

        The answer names every secret that signs (by fingerprint: the first 16 hex digits
        of sha256 of the secret text, which a receiver can compute; never the secret)."""
        secret = generate_webhook_secret()
        box = self._secret_box()
        context = f"webhook:{session_id}"
        row = self.repo.rotate_secret(session_id, box.encrypt(secret, context=context), ROTATION_GRACE_SECONDS,
                                      MAX_PREVIOUS_SECRETS)
        if row is None:
            raise SessionNotFound(session_id)
        if not row.get("webhook_url"):
            raise Conflict(f"session '{session_id}' has no webhook", code="webhook_not_configured")
        previous = [{"fingerprint": secret_fingerprint(box.decrypt(enc, context=context)), "expires_at": expires}
                    for enc, expires in row["previous"]]
        if row["refused"]:
            raise Conflict(
                f"{MAX_PREVIOUS_SECRETS} previous webhook secrets still sign until their promised expiry; "
                f"rotate again after {previous[0]['expires_at'].isoformat()}", code="too_many_webhook_secrets",
                details={"max_previous_secrets": MAX_PREVIOUS_SECRETS,
                         "next_slot_at": _iso(previous[0]["expires_at"]),
                         "previous_secrets": [{**p, "expires_at": _iso(p["expires_at"])} for p in previous]})
        replaced = row["webhook_secret_enc"] is not None
        return {"webhook_secret": secret, "fingerprint": secret_fingerprint(secret),
                "previous_secret_expires_at": previous[-1]["expires_at"] if replaced else None,
                "previous_secrets": previous, "max_previous_secrets": MAX_PREVIOUS_SECRETS}

    # -- stats --------------------------------------------------------------------------
    def stats(self, session_id: str | None = None) -> dict[str, Any]:
        session = self._require_session(session_id) if session_id else None
        raw = self.repo.stats(session_id, STATS_WINDOW_SECONDS)
        window = raw["window"]
        attempts = int(window["attempts"] or 0)
        answer: dict[str, Any] = {
            "deliveries": raw["by_status"], "total": sum(raw["by_status"].values()),
            "window_seconds": STATS_WINDOW_SECONDS, "attempts_in_window": attempts,
            "success_rate": round(int(window["ok"] or 0) / attempts, 4) if attempts else None,
            "latency_p50_ms": window["p50"], "latency_p95_ms": window["p95"],
            "breakers": raw["breakers"],
        }
        if session is not None:
            from chalicelib.services.sessions import session_view  # noqa: PLC0415

            answer["session_id"] = session_id
            answer["webhook_status"] = session_view(session)["webhook"]["status"]
        else:
            answer["queue_depth"] = self._depth(lambda: self.queues.events_url,
                                                ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                                                 "ApproximateNumberOfMessagesDelayed"))
            answer["dlq_depth"] = self._depth(lambda: self.queues.events_dlq_url, ("ApproximateNumberOfMessages",))
        return answer

    def _depth(self, url: Callable[[], str], names: tuple[str, ...]) -> int | None:
        try:
            attrs = self.queues.sqs.get_queue_attributes(QueueUrl=url(), AttributeNames=list(names))["Attributes"]
        except Exception:  # noqa: BLE001 - stats report what they can
            return None
        return sum(int(attrs.get(n, 0)) for n in names)


def secret_fingerprint(secret: str) -> str:
    """Names a webhook secret in answers without revealing it (receivers compute the same)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def delivery_view(row: dict[str, Any], *, payload: bool = False) -> dict[str, Any]:
    view = {k: row.get(k) for k in ("event", "url", "status", "attempt", "http_status", "latency_ms",
                                    "response_excerpt", "error", "next_attempt_at", "last_attempt_at",
                                    "created_at", "updated_at", "session_id")}
    view["id"] = str(row["id"])
    view["event_id"] = str(row["event_id"])
    if payload:
        view["payload"] = row.get("payload")
    return view


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise NotFound(f"delivery '{text}' does not exist", code="delivery_not_found") from None


