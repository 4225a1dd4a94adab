"""Sending messages: validate, refuse what cannot be sent, hand a `send_message` command
to the session's runner, and (with `wait`) answer with WhatsApp's message id.

A repeated `idempotency_key` returns the first command: the bus's unique
(session_id, idempotency_key) makes the second insert a read, so nothing is sent twice.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

from chalicelib.commands import CommandOutbox, Outcome
from chalicelib.commands.outbox import ROUTE_WAIT_SECONDS
from chalicelib.errors import (
    DependencyUnavailable,
    PayloadTooLarge,
    ValidationFailed,
)
from chalicelib.repositories.sessions import SessionRepository
from chalicelib.schemas.messages import MEDIA_TYPES
from chalicelib.services.guards import require_logged_in
from chalicelib.netguard.resolve import Refused

MAX_INLINE_MEDIA_BYTES = 700 * 1024  # base64 of it stays under the 1 MiB API body limit


class MessageService:
    def __init__(self, sessions: SessionRepository, bus: CommandOutbox,
                 check_media_url: Callable[[str], None] = lambda url: None, wait_timeout: float = ROUTE_WAIT_SECONDS,
                 check_media_key: Callable[[str, dict[str, Any]], None] | None = None):
        self.sessions = sessions
        self.bus = bus
        self.check_media_url = check_media_url
        self.check_media_key = check_media_key  # (session uuid, payload): chalicelib.services.media
        self.wait_timeout = wait_timeout

    def send(self, session_id: str, message: Any, *, wait: bool) -> Outcome:
        session = require_logged_in(self.sessions, session_id, before="before sending")
        payload = message.model_dump(mode="json", exclude_none=True)
        idempotency_key = payload.pop("idempotency_key", None)
        if payload["type"] in MEDIA_TYPES:
            self._check_media(payload)
            if payload.get("media_key"):
                self._check_media_key(str(session["id"]), payload)
        outcome = self.bus.submit(session_id, "send_message", payload, wait=wait, timeout=self.wait_timeout,
                                  idempotency_key=idempotency_key, what="the send", failure_code="send_failed")
        if not outcome.done:
            return outcome
        view = outcome.body
        result = view.get("result") or {}
        return Outcome.finished({"command_id": view["command_id"], "status": "succeeded",
                                 "message_id": result.get("message_id"), "timestamp": result.get("timestamp")})

    def _check_media_key(self, session_uuid: str, payload: dict[str, Any]) -> None:
        if self.check_media_key is None:
            raise DependencyUnavailable("media storage is not configured on this deployment (MEDIA_BUCKET is unset)",
                                        code="media_storage_not_configured")
        self.check_media_key(session_uuid, payload)

    def _check_media(self, payload: dict[str, Any]) -> None:
        if payload.get("media_base64"):
            size = len(base64.b64decode(payload["media_base64"]))
            if size > MAX_INLINE_MEDIA_BYTES:
                raise PayloadTooLarge(f"inline media is {size} bytes; the limit is {MAX_INLINE_MEDIA_BYTES} "
                                      "(use media_url for larger files)", code="media_too_large")
        if payload.get("media_url"):
            try:
                self.check_media_url(payload["media_url"])
            except Refused as exc:
                problem = {"field": "media_url", "message": str(exc), "type": "url_refused"}
                raise ValidationFailed(f"media_url refused: {exc}", details=[problem]) from None
