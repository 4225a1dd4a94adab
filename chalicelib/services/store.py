"""The read side of the message store: chats, a chat's messages, a message, contacts.

Scope: the session *row* (`sessions.id`), never the text session_id: a session created again
under an old session_id sees nothing of the old one's messages (the rows go with the old row).

Paging: newest first, `limit` rows, and an opaque `cursor` to pass back for the next page
(None on the last). A cursor is base64url JSON of the listing it belongs to, the session row
and the last row's sort key; a cursor of another listing or another session row is a 422
naming `cursor` (it could only skip or repeat rows).

A contact's profile (about text, picture URL, on WhatsApp) comes from the runner
(`contact_profile` command) when the cached one is older than CONTACT_PROFILE_TTL and the
session is logged in; otherwise the cached values are answered with `profile_at` saying how old.
"""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from chalicelib.commands import CommandOutbox
from chalicelib.commands.outbox import ROUTE_WAIT_SECONDS
from chalicelib.errors import NotFound, SessionNotFound, ValidationFailed
from chalicelib.messaging.recipients import InvalidRecipient, normalise_phone, normalise_recipient
from chalicelib.repositories.store_reads import StoreReadRepository
from chalicelib.services.guards import LOGGED_IN_STATUSES


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"'{field}': {message}", details=[{"field": field, "message": message}])


def encode_cursor(listing: str, uid: str, key: list[Any]) -> str:
    raw = json.dumps({"l": listing, "u": uid, "k": key}, separators=(",", ":"), default=str)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, listing: str, uid: str) -> list[Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        if not isinstance(raw, dict) or not isinstance(raw.get("k"), list):
            raise ValueError(cursor)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad("cursor", "not a cursor this API gave out") from None
    if raw.get("l") != listing or raw.get("u") != uid:
        raise _bad("cursor", "a cursor of another listing (or of a deleted session)")
    return raw["k"]


def _time_key(key: list[Any]) -> tuple[datetime, str]:
    try:
        return datetime.fromisoformat(str(key[0])), str(key[1])
    except (ValueError, IndexError):
        raise _bad("cursor", "not a cursor this API gave out") from None


def chat_jid(text: str) -> str:
    """The `{chat}` path parameter: a JID (URL-encoded) or phone digits -> the stored chat JID."""
    value = text.strip()
    try:
        if "@" in value:
            jid = normalise_recipient(value)
            return jid if not jid.endswith("@s.whatsapp.net") else f"{jid.split('@')[0]}@s.whatsapp.net"
        return f"{normalise_phone(value)}@s.whatsapp.net"
    except InvalidRecipient as exc:
        raise _bad("chat", f"expected phone digits or a JID: {exc}") from None


def contact_jid(text: str) -> tuple[str, str]:
    """The `{phone}` path parameter -> (phone digits, phone JID)."""
    try:
        value = text.strip()
        phone = normalise_recipient(value).split("@")[0] if "@" in value else normalise_phone(value)
        if "@" in value and not value.endswith("@s.whatsapp.net"):
            raise InvalidRecipient("expected a phone number (or a …@s.whatsapp.net JID)")
    except InvalidRecipient as exc:
        raise _bad("phone", str(exc)) from None
    return phone, f"{phone}@s.whatsapp.net"


def _iso(value: Optional[datetime]) -> Optional[str]:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _person(jid: Optional[str], phone: Optional[str], lid: Optional[str]) -> Optional[dict[str, Any]]:
    if not jid:
        return None
    return {"jid": jid, "phone": phone or (jid.split("@")[0] if jid.endswith("@s.whatsapp.net") else None),
            "lid": lid}


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"message_id": row["message_id"], "chat": row["chat_jid"],
            "sender": _person(row["sender_jid"], row["sender_phone"], row["sender_lid"]),
            "from_me": row["from_me"], "type": row["type"], "text": row["text"], "content": row["content"],
            "media": row["media"], "reactions": row["reactions"], "quoted_message_id": row["quoted_id"],
            "push_name": row["push_name"], "timestamp": _iso(row["sent_at"]), "recorded_at": _iso(row["recorded_at"]),
            "status": row["status"], "status_at": _iso(row["status_at"]), "edited": row["edited_at"] is not None,
            "edited_at": _iso(row["edited_at"]), "revoked": row["revoked_at"] is not None,
            "revoked_at": _iso(row["revoked_at"]), "revoked_by": row["revoked_by"]}


def chat_view(row: dict[str, Any]) -> dict[str, Any]:
    last = None
    if row["last_id"]:
        last = {"message_id": row["last_id"], "type": row["last_type"], "from_me": row["last_from_me"],
                "text": row["last_text"], "timestamp": _iso(row["last_at"]),
                "revoked": row["last_revoked_at"] is not None}
    return {"jid": row["chat_jid"], "name": row["name"], "is_group": row["is_group"],
            "unread_count": row["unread_count"], "last_read_at": _iso(row["last_read_at"]),
            "archived": row["archived"], "pinned": row["pinned"], "muted_until": _iso(row["muted_until"]),
            "last_activity_at": _iso(row["activity_at"]), "last_message": last}


def contact_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"jid": row["jid"], "phone": row["phone"], "lid": row["lid"], "push_name": row["push_name"],
            "business_name": row["business_name"], "full_name": row["full_name"], "first_name": row["first_name"],
            "on_whatsapp": row["on_whatsapp"], "about": row["about"], "picture_url": row["picture_url"],
            "profile_at": _iso(row["profile_at"]), "updated_at": _iso(row["updated_at"])}


class StoreService:
    def __init__(self, reads: StoreReadRepository, session_of: Callable[[str], Optional[dict[str, Any]]],
                 bus: CommandOutbox, *, profile_ttl: float = 86400.0, wait_timeout: float = ROUTE_WAIT_SECONDS):
        self.reads = reads
        self.session_of = session_of  # SessionRepository.status_of: {"id", "session_id", "status"}
        self.bus = bus
        self.profile_ttl = profile_ttl
        self.wait_timeout = wait_timeout

    def _session(self, session_id: str) -> dict[str, Any]:
        session = self.session_of(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def chats(self, session_id: str, query: Any) -> dict[str, Any]:
        uid = str(self._session(session_id)["id"])
        after = _time_key(decode_cursor(query.cursor, "chats", uid)) if query.cursor else None
        rows = self.reads.chats(uid, limit=query.limit + 1, after=after, is_group=query.is_group, unread=query.unread)
        page = rows[:query.limit]
        cursor = encode_cursor("chats", uid, [page[-1]["activity_at"].isoformat(), page[-1]["chat_jid"]]) \
            if len(rows) > query.limit else None
        return {"chats": [chat_view(row) for row in page], "cursor": cursor}

    def messages(self, session_id: str, chat: str, query: Any) -> dict[str, Any]:
        uid = str(self._session(session_id)["id"])
        jid = chat_jid(chat)
        listing = f"messages:{jid}"
        after = _time_key(decode_cursor(query.cursor, listing, uid)) if query.cursor else None
        if not self.reads.chat_exists(uid, jid):
            raise NotFound(f"no chat '{jid}' in the message store of session '{session_id}'", code="chat_not_found")
        rows = self.reads.messages(uid, jid, limit=query.limit + 1, type=query.type, before=query.before,
                                   since=query.after, after=after)
        page = rows[:query.limit]
        cursor = encode_cursor(listing, uid, [page[-1]["sent_at"].isoformat(), page[-1]["message_id"]]) \
            if len(rows) > query.limit else None
        return {"chat": jid, "messages": [message_view(row) for row in page], "cursor": cursor}

    def message(self, session_id: str, message_id: str) -> dict[str, Any]:
        uid = str(self._session(session_id)["id"])
        row = self.reads.message(uid, message_id)
        if row is None:
            raise NotFound(f"no message '{message_id[:128]}' in the message store of session '{session_id}'",
                           code="message_not_found")
        return message_view(row)

    def contacts(self, session_id: str, query: Any) -> dict[str, Any]:
        uid = str(self._session(session_id)["id"])
        after = None
        if query.cursor:
            key = decode_cursor(query.cursor, "contacts", uid)
            after = str(key[0]) if key else None
        rows = self.reads.contacts(uid, limit=query.limit + 1, after=after, search=query.search)
        page = rows[:query.limit]
        cursor = encode_cursor("contacts", uid, [page[-1]["jid"]]) if len(rows) > query.limit else None
        return {"contacts": [contact_view(row) for row in page], "cursor": cursor}

    def contact(self, session_id: str, phone_text: str, refresh: bool = False) -> dict[str, Any]:
        session = self._session(session_id)
        uid = str(session["id"])
        phone, jid = contact_jid(phone_text)
        row = self.reads.contact(uid, jid)
        if session["status"] in LOGGED_IN_STATUSES and (refresh or self._stale(row)):
            answer = self.bus.await_success(
                str(self.bus.enqueue(session_id, "contact_profile", {"jid": jid})["id"]), self.wait_timeout,
                what="reading the contact's profile", failure_code="contact_profile_failed")
            profile = (answer.get("result") or {}).get("profile") or {}
            self.reads.save_profile(uid, jid, phone, profile)
            row = self.reads.contact(uid, jid)
        if row is None:
            raise NotFound(f"no contact '{phone}' in the store of session '{session_id}' (connect the session to "
                           "look it up on WhatsApp)", code="contact_not_found")
        return contact_view(row)

    def _stale(self, row: Optional[dict[str, Any]]) -> bool:
        if row is None or row["profile_at"] is None:
            return True
        return row["profile_at"] < datetime.now(timezone.utc) - timedelta(seconds=self.profile_ttl)
