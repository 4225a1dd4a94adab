"""Chats, contacts and groups: the API's side of commands that talk to WhatsApp.

Every operation needs a logged-in session (409 `not_connected` otherwise, before anything
is queued) and runs as a command of the session (one FIFO group), so it keeps its place
among the session's sends ("typing", then the message):

- read receipts and presence answer 202 with the command (or, with `wait`, 200 when the
  runner has done it), like messages;
- number checks and groups are request/response: the API waits for the runner's answer
  (bounded; 504 `runner_timeout` naming the command when the runner is slow).

Number checks are capped per request and rate-limited per session in numbers (a token
bucket in PostgreSQL shared by every API instance), because bulk lookups get numbers
banned. Invalid numbers are a 422 and cost nothing; a refused check (429) costs nothing.
"""
from __future__ import annotations

from typing import Any

from chalicelib.commands import CommandOutbox, Outcome
from chalicelib.commands.outbox import ROUTE_WAIT_SECONDS
from chalicelib.errors import NotFound, RateLimited, ValidationFailed
from chalicelib.repositories.rate_limits import RateLimitRepository
from chalicelib.repositories.sessions import SessionRepository
from chalicelib.schemas.chats import contact_phone
from chalicelib.services.guards import require_logged_in


class ChatService:
    def __init__(self, sessions: SessionRepository, bus: CommandOutbox, rate_limits: RateLimitRepository, *,
                 max_batch: int = 50, rate_limit: tuple[int, float] = (200, 3600.0),
                 wait_timeout: float = ROUTE_WAIT_SECONDS):
        self.sessions = sessions
        self.bus = bus
        self.rate_limits = rate_limits
        self.max_batch = max_batch
        self.rate_limit = rate_limit
        self.wait_timeout = wait_timeout

    def _ready(self, session_id: str) -> None:
        require_logged_in(self.sessions, session_id)

    def _ask(self, session_id: str, type: str, payload: dict[str, Any], what: str) -> dict[str, Any]:
        """Enqueue and wait for the runner's answer; the finished command's view."""
        row = self.bus.enqueue(session_id, type, payload)
        return self.bus.await_success(str(row["id"]), self.wait_timeout, what=what, failure_code=f"{type}_failed")

    # -- 202 / ?wait commands -----------------------------------------------------------
    def mark_read(self, session_id: str, request: Any, *, wait: bool) -> Outcome:
        self._ready(session_id)
        payload = request.model_dump(mode="json", exclude_none=True)
        return self._submit(session_id, "mark_read", payload, wait, "marking messages read")

    def presence(self, session_id: str, request: Any, *, wait: bool) -> Outcome:
        self._ready(session_id)
        payload = request.model_dump(mode="json", exclude_none=True)
        return self._submit(session_id, "send_presence", payload, wait, "sending the presence")

    def _submit(self, session_id: str, type: str, payload: dict[str, Any], wait: bool,
                what: str) -> Outcome:
        outcome = self.bus.submit(session_id, type, payload, wait=wait, timeout=self.wait_timeout, what=what,
                                  failure_code=f"{type}_failed")
        if not outcome.done:
            return outcome
        view = outcome.body
        return Outcome.finished({"command_id": view["command_id"], "status": "succeeded",
                                 "result": view.get("result") or {}})

    # -- contacts -----------------------------------------------------------------------
    def check_contacts(self, session_id: str, inputs: list[str]) -> dict[str, Any]:
        if len(inputs) > self.max_batch:
            raise ValidationFailed(
                f"{len(inputs)} numbers in one check; the limit is {self.max_batch} (CONTACTS_CHECK_MAX_BATCH)",
                details=[{"field": "phones", "message": f"at most {self.max_batch} numbers per request",
                          "type": "too_long"}])
        phones = [contact_phone(text) for text in inputs]  # validated by the model already
        unique = list(dict.fromkeys(phones))
        self._ready(session_id)
        capacity, period = self.rate_limit
        charge = self.rate_limits.take(f"contacts_check:{session_id}", len(unique), capacity=capacity,
                                       period=period)
        if not charge.granted:
            raise RateLimited(
                f"checking {len(unique)} numbers would exceed this session's limit of {capacity} per "
                f"{period:g}s ({charge.remaining} left); retry in {charge.retry_after}s",
                retry_after=charge.retry_after,
                details={"limit": capacity, "period_seconds": period, "remaining": charge.remaining})
        view = self._ask(session_id, "check_contacts", {"phones": unique}, "the number check")
        found = {item["phone"]: item for item in (view.get("result") or {}).get("contacts", [])}
        results = []
        for text, phone in zip(inputs, phones):
            item = found.get(phone) or {}
            results.append({"input": text, "phone": phone, "on_whatsapp": bool(item.get("on_whatsapp")),
                            "jid": item.get("jid"), "verified_name": item.get("verified_name")})
        return {"command_id": view["command_id"], "results": results,
                "rate_limit": {"limit": capacity, "period_seconds": period, "remaining": charge.remaining,
                               "reset_seconds": charge.reset_seconds}}

    # -- groups -------------------------------------------------------------------------
    def list_groups(self, session_id: str) -> dict[str, Any]:
        self._ready(session_id)
        view = self._ask(session_id, "list_groups", {}, "listing the groups")
        groups = [_without_participants(g) for g in (view.get("result") or {}).get("groups", [])]
        return {"command_id": view["command_id"], "groups": groups}

    def group_info(self, session_id: str, group_jid: str) -> dict[str, Any]:
        self._ready(session_id)
        view = self._group_command(session_id, "group_info", {"group_jid": group_jid}, "reading the group")
        return {**view["result"]["group"], "command_id": view["command_id"]}

    def create_group(self, session_id: str, request: Any) -> dict[str, Any]:
        self._ready(session_id)
        view = self._ask(session_id, "create_group", {"name": request.name, "participants": request.participants},
                         "creating the group")
        return {**view["result"]["group"], "command_id": view["command_id"]}

    def update_participants(self, session_id: str, group_jid: str, request: Any) -> dict[str, Any]:
        self._ready(session_id)
        view = self._group_command(session_id, "update_participants",
                                   {"group_jid": group_jid, "action": request.action,
                                    "participants": request.participants}, "updating the participants")
        return {"command_id": view["command_id"], "group_jid": group_jid, "action": request.action,
                "participants": view["result"]["participants"]}

    def _group_command(self, session_id: str, type: str, payload: dict[str, Any], what: str) -> dict[str, Any]:
        try:
            return self._ask(session_id, type, payload, what)
        except Exception as exc:
            if getattr(exc, "code", None) == "group_not_found":  # WhatsApp knows no such group (for us)
                raise NotFound(f"group '{payload['group_jid']}' does not exist or this session is not in it",
                               code="group_not_found", details=getattr(exc, "details", None)) from None
            raise


def _without_participants(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k != "participants"}
