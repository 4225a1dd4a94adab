"""Group administration, the account's profile and privacy, and the blocklist (issue 17): the
API's side of commands that change what WhatsApp holds for the number.

As for groups (`chalicelib/services/chats.py`), every operation needs a logged-in session
(409 `not_connected` before anything is queued), runs as a command sent to the runner holding
the session (in order with its sends) and waits for the runner's answer: bounded, 504
`runner_timeout` naming the command; a refusal is 502 with the runner's code (`not_admin`,
`invite_revoked`, `picture_not_jpeg`, ...); a group WhatsApp does not know is 404
`group_not_found`.

Pictures come as `media_base64` (checked here: JPEG, at most MAX_PICTURE_BYTES, else 413
`picture_too_large` / 422) or as a `media_key` of this session's media bucket (checked as a
send's key; the runner checks the bytes it reads with the same rules). No URL is taken.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

from chalicelib.commands import CommandOutbox
from chalicelib.commands.outbox import ROUTE_WAIT_SECONDS
from chalicelib.errors import DependencyUnavailable, NotFound, PayloadTooLarge, ValidationFailed
from chalicelib.repositories.sessions import SessionRepository
from chalicelib.schemas.account import JPEG_MAGIC, MAX_PICTURE_BYTES
from chalicelib.services.guards import require_logged_in


class AccountService:
    def __init__(self, sessions: SessionRepository, bus: CommandOutbox, *,
                 check_media_key: Callable[[str, dict[str, Any]], None] | None = None,
                 wait_timeout: float = ROUTE_WAIT_SECONDS):
        self.sessions = sessions
        self.bus = bus
        self.check_media_key = check_media_key  # (session uuid, payload): chalicelib.services.media
        self.wait_timeout = wait_timeout

    def _ask(self, session_id: str, type: str, payload: dict[str, Any], what: str) -> dict[str, Any]:
        """Check the login, enqueue, wait: the runner's result plus the command id."""
        require_logged_in(self.sessions, session_id)
        view = self.bus.enqueue(session_id, type, payload)
        try:
            done = self.bus.await_success(str(view["id"]), self.wait_timeout, what=what,
                                          failure_code=f"{type}_failed")
        except Exception as exc:
            if getattr(exc, "code", None) == "group_not_found" and "group_jid" in payload:
                raise NotFound(f"group '{payload['group_jid']}' does not exist or this session is not in it",
                               code="group_not_found", details=getattr(exc, "details", None)) from None
            raise
        return {**(done.get("result") or {}), "command_id": done["command_id"]}

    def _picture(self, session_id: str, request: Any) -> dict[str, Any]:
        if request.media_base64:
            data = base64.b64decode(request.media_base64)
            if len(data) > MAX_PICTURE_BYTES:
                raise PayloadTooLarge(f"the picture is {len(data)} bytes; the limit is {MAX_PICTURE_BYTES}",
                                      code="picture_too_large")
            if not data.startswith(JPEG_MAGIC):
                raise ValidationFailed("the picture is not a JPEG (WhatsApp takes JPEG pictures only)", details=[
                    {"field": "media_base64", "type": "picture_not_jpeg", "message": "expected a JPEG image"}])
            return {"media_base64": request.media_base64}
        session = require_logged_in(self.sessions, session_id)
        if self.check_media_key is None:
            raise DependencyUnavailable("media storage is not configured on this deployment (MEDIA_BUCKET is unset)",
                                        code="media_storage_not_configured")
        payload = {"media_key": request.media_key}
        self.check_media_key(str(session["id"]), payload)  # this session's, present, within the media cap
        return {"media_key": request.media_key}

    # -- groups -------------------------------------------------------------------------
    def leave_group(self, session_id: str, group_jid: str) -> dict[str, Any]:
        return self._ask(session_id, "leave_group", {"group_jid": group_jid}, "leaving the group")

    def invite_link(self, session_id: str, group_jid: str, *, revoke: bool) -> dict[str, Any]:
        return self._ask(session_id, "group_invite_link", {"group_jid": group_jid, "revoke": revoke},
                         "revoking the invite link" if revoke else "reading the invite link")

    def preview_invite(self, session_id: str, code: str) -> dict[str, Any]:
        answer = self._ask(session_id, "group_invite_preview", {"code": code}, "the invite preview")
        return {**answer["group"], "command_id": answer["command_id"]}

    def join_group(self, session_id: str, code: str) -> dict[str, Any]:
        return self._ask(session_id, "join_group", {"code": code}, "joining the group")

    def set_group_subject(self, session_id: str, group_jid: str, subject: str) -> dict[str, Any]:
        return self._ask(session_id, "set_group_subject", {"group_jid": group_jid, "subject": subject},
                         "renaming the group")

    def set_group_description(self, session_id: str, group_jid: str, description: str) -> dict[str, Any]:
        return self._ask(session_id, "set_group_description", {"group_jid": group_jid, "description": description},
                         "changing the description")

    def set_group_picture(self, session_id: str, group_jid: str, request: Any) -> dict[str, Any]:
        picture = self._picture(session_id, request)
        return self._ask(session_id, "set_group_picture", {"group_jid": group_jid, "picture": picture},
                         "changing the group picture")

    def set_group_settings(self, session_id: str, group_jid: str, request: Any) -> dict[str, Any]:
        return self._ask(session_id, "set_group_settings", {"group_jid": group_jid, "announce": request.announce,
                                                            "locked": request.locked}, "changing the group settings")

    def join_requests(self, session_id: str, group_jid: str) -> dict[str, Any]:
        return self._ask(session_id, "group_requests", {"group_jid": group_jid}, "listing the join requests")

    def answer_join_requests(self, session_id: str, group_jid: str, request: Any) -> dict[str, Any]:
        return self._ask(session_id, "update_group_requests",
                         {"group_jid": group_jid, "action": request.action, "participants": request.participants},
                         "answering the join requests")

    # -- profile and privacy --------------------------------------------------------------
    def set_push_name(self, session_id: str, name: str) -> dict[str, Any]:
        return self._ask(session_id, "set_push_name", {"name": name}, "setting the push name")

    def set_about(self, session_id: str, about: str) -> dict[str, Any]:
        return self._ask(session_id, "set_about", {"about": about}, "setting the about text")

    def set_profile_picture(self, session_id: str, request: Any) -> dict[str, Any]:
        picture = self._picture(session_id, request)
        return self._ask(session_id, "set_profile_picture", {"picture": picture}, "setting the profile picture")

    def privacy(self, session_id: str) -> dict[str, Any]:
        return self._ask(session_id, "get_privacy", {}, "reading the privacy settings")

    def set_privacy(self, session_id: str, request: Any) -> dict[str, Any]:
        settings = request.model_dump(exclude_none=True)
        return self._ask(session_id, "set_privacy", {"settings": settings}, "changing the privacy settings")

    # -- blocklist ------------------------------------------------------------------------
    def blocklist(self, session_id: str) -> dict[str, Any]:
        return self._ask(session_id, "blocklist", {}, "reading the blocklist")

    def update_blocklist(self, session_id: str, request: Any) -> dict[str, Any]:
        return self._ask(session_id, "update_blocklist", {"contact": request.contact, "action": request.action},
                         "changing the blocklist")
