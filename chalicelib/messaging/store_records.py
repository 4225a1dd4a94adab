"""What a message event changes in the message store, as plain values (no SQL, no I/O).

The runner's write path (`SessionStore.apply`) hands every event it records to
`store_ops(event, data, mode, own_jid)`; the answer is a list of operations that
`chalicelib.repositories.message_store.MessageStoreRepository.apply` performs in the same
transaction as the event. Kept pure so the rules (what a revoke blanks, which receipt moves a
status, what `MESSAGE_STORE=metadata` leaves out) are tested without a database.

Operations:
- `("message", row)`: insert or refresh a message and its chat (and the author as a contact);
- `("edit", {...})`, `("revoke", {...})`, `("reaction", {...})`: change a stored message;
- `("status", {...})`: receipts from the other side (delivered / read / played) on our messages;
- `("chat_read", {...})`: we read a chat (our `mark_read`, or our other device did);
- `("contact", {...})`: names seen for a contact;
- `("chat", {...})`: what WhatsApp says about a chat (group subject, archived, pinned, muted).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

MODES = ("full", "metadata", "off")
HISTORY_MODES = ("off", "recent", "full")
PREVIEW_CHARS = 200  # WhatsApp's own quote preview shows about two lines
STATUS_RANK = {"pending": 0, "sent": 1, "received": 1, "delivered": 2, "read": 3, "played": 4}
RECEIPT_STATUS = {"delivered": "delivered", "read": "read", "played": "played"}
OWN_READ_RECEIPTS = ("read_self", "played_self")
# body fields kept in `content` (the text/caption has its own column, media its reference)
CONTENT_FIELDS = ("latitude", "longitude", "name", "address", "display_name", "vcard", "question", "options",
                  "selectable_count", "filename", "ptt", "view_once", "ephemeral", "mentions", "link_preview")
MEDIA_FIELDS = ("media_key", "mime_type", "size", "sha256", "filename")
PROTOCOL_TYPES = ("reaction", "edit", "revoke")  # change another message; never a row of their own
Op = tuple[str, dict[str, Any]]


def timestamp(value: Any) -> Optional[datetime]:
    """An event's timestamp (epoch seconds or milliseconds, or ISO 8601) as a datetime."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value / 1000 if value > 10_000_000_000 else value, tz=timezone.utc)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def preview_of(data: dict[str, Any]) -> Optional[str]:
    """The text a quote of this message shows: its text, else its caption or name."""
    for field in ("text", "caption", "name", "question", "filename", "display_name"):
        value = data.get(field)
        if isinstance(value, str) and value:
            return value[:PREVIEW_CHARS]
    return None


def person_jid(rendered: dict[str, Any] | None) -> str | None:
    """The JID a quote names as the author: the phone-number JID when known (WhatsApp
    clients match quotes by it; a LID only when the number is unknown), without a device."""
    if not rendered:
        return None
    if rendered.get("phone"):
        return f"{rendered['phone']}@s.whatsapp.net"
    jid = rendered.get("jid")
    if not jid:
        return None
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server}"


def _rendered(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        user, _, server = value.partition("@")
        return {"jid": value, "phone": user.split(":")[0] if server == "s.whatsapp.net" else None,
                **({"lid": value} if server == "lid" else {})}
    return None


def _chat_jid(data: dict[str, Any]) -> str | None:
    chat = _rendered(data.get("chat")) or _rendered(data.get("to"))
    return person_jid(chat) if chat and not str(chat.get("jid", "")).endswith("@g.us") else (chat or {}).get("jid")


def _author(data: dict[str, Any], own_jid: str | None, from_me: bool) -> dict[str, Any] | None:
    author = _rendered(data.get("from")) or _rendered(data.get("sender"))
    if author is None and from_me and own_jid:
        author = _rendered(own_jid)
    return author


def message_row(data: dict[str, Any], mode: str, own_jid: str | None, *, from_me: bool,
                history: bool = False) -> dict[str, Any] | None:
    """The `messages` row of a message event (None without an id or a chat)."""
    chat = _chat_jid(data)
    if not data.get("message_id") or not chat:
        return None
    from_me = bool(data.get("from_me", from_me))
    author = _author(data, own_jid, from_me) or {}
    row: dict[str, Any] = {
        "message_id": data["message_id"], "chat_jid": chat, "is_group": chat.endswith("@g.us"),
        "sender_jid": person_jid(author), "sender_phone": author.get("phone"), "sender_lid": author.get("lid"),
        "from_me": from_me, "type": data.get("type") or "unknown",
        "quoted_id": data.get("quoted_message_id"), "push_name": data.get("push_name"),
        "sent_at": timestamp(data.get("timestamp")), "status": "sent" if from_me else "received",
        "text": None, "content": None, "media": None, "history": history,
    }
    if history and data.get("status") in STATUS_RANK:
        row["status"] = data["status"]
    if mode == "full":
        row.update(_content(data))
    return row


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """What `MESSAGE_STORE=full` keeps beyond the metadata: text, the typed content, media."""
    text = data.get("text") or data.get("caption")
    content = {k: data[k] for k in CONTENT_FIELDS if _kept(data.get(k))}
    return {"text": text if isinstance(text, str) and text else None, "content": content or None,
            "media": _media_reference(data)}


def _kept(value: Any) -> bool:
    """A content field worth storing: not absent, empty, or a false flag (0 is a value)."""
    return value is not None and value is not False and value != "" and value != []


def _media_reference(data: dict[str, Any]) -> dict[str, Any] | None:
    """media_key, mime, size, sha256 of a stored file; what the message itself says otherwise."""
    media: dict[str, Any] = data["media"] if isinstance(data.get("media"), dict) else {}
    reference = {k: media[k] for k in MEDIA_FIELDS if media.get(k) not in (None, "")}
    if media.get("error"):
        reference["error"] = media["error"]
    for field, name in (("mime_type", "mime_type"), ("file_length", "size"), ("media_key", "media_key"),
                        ("media_sha256", "sha256"), ("media_size", "size")):
        if data.get(field) not in (None, "") and name not in reference:
            reference[name] = data[field]
    return reference or None


def target_id(data: dict[str, Any]) -> str | None:
    """The message a reaction, edit or revoke is about."""
    for value in (data.get("target_message_id"), (data.get("target") or {}).get("message_id")):
        if value:
            return str(value)
    return None


def store_ops(event: str | None, data: dict[str, Any] | None, mode: str, own_jid: str | None = None) -> list[Op]:
    """The store operations of one recorded event (none with MESSAGE_STORE=off)."""
    if mode == "off" or not event or data is None:
        return []
    handler = _EVENTS.get(event)
    return handler(data, mode, own_jid) if handler else []


def _message(data: dict[str, Any], mode: str, own_jid: str | None, *, from_me: bool) -> list[Op]:
    kind = data.get("type")
    if kind in PROTOCOL_TYPES:
        return _protocol(data, mode, own_jid, from_me=from_me)
    row = message_row(data, mode, own_jid, from_me=from_me)
    if row is None:
        return []
    ops: list[Op] = [("message", row)]
    if not row["from_me"] and row["sender_jid"] and not row["sender_jid"].endswith("@g.us"):
        ops.append(("contact", {"jid": row["sender_jid"], "phone": row["sender_phone"], "lid": row["sender_lid"],
                                "push_name": data.get("push_name")}))
    return ops


def _protocol(data: dict[str, Any], mode: str, own_jid: str | None, *, from_me: bool) -> list[Op]:
    """A reaction, edit or revoke as a message: applied to the message it names."""
    kind, target = data.get("type"), target_id(data)
    if kind == "reaction" and target is None and not from_me:
        target = data.get("message_id")  # the received form names the reacted message in message_id
    if not target:
        return []
    author = person_jid(_author(data, own_jid, from_me))
    at = timestamp(data.get("timestamp"))
    if kind == "reaction":
        return [] if mode != "full" else [("reaction", {"message_id": target, "author": author or "",
                                                          "emoji": data.get("emoji") or ""})]
    if kind == "edit":
        return [("edit", {"message_id": target, "text": data.get("text") if mode == "full" else None,
                          "edited_at": at})]
    return [("revoke", {"message_id": target, "revoked_by": author, "revoked_at": at})]


def _edited(data: dict[str, Any], mode: str, own_jid: str | None) -> list[Op]:
    text = data.get("text") or data.get("caption")
    return [("edit", {"message_id": data.get("message_id"), "text": text if mode == "full" else None,
                      "edited_at": timestamp(data.get("edited_at") or data.get("timestamp"))})]


def _revoked(data: dict[str, Any], mode: str, own_jid: str | None) -> list[Op]:
    by = person_jid(_rendered(data.get("revoked_by")) or _rendered(data.get("sender")))
    return [("revoke", {"message_id": data.get("message_id"), "revoked_by": by,
                        "revoked_at": timestamp(data.get("revoked_at") or data.get("timestamp"))})]


def _receipt(data: dict[str, Any], mode: str, own_jid: str | None) -> list[Op]:
    kind, ids = data.get("type"), [str(i) for i in data.get("message_ids") or []]
    chat = _chat_jid(data)
    if not ids:
        return []
    at = timestamp(data.get("timestamp"))
    if kind in RECEIPT_STATUS:
        return [("status", {"message_ids": ids, "status": RECEIPT_STATUS[kind], "at": at})]
    if kind in OWN_READ_RECEIPTS and chat:
        return [("chat_read", {"chat_jid": chat, "message_ids": ids})]
    return []


def _contact(data: dict[str, Any], mode: str, own_jid: str | None) -> list[Op]:
    who = _rendered(data.get("contact")) or _rendered(data.get("jid")) or _rendered(data.get("from"))
    jid = person_jid(who)
    if not jid:
        return []
    names = {k: data.get(k) for k in ("push_name", "business_name", "full_name", "first_name") if data.get(k)}
    return [("contact", {"jid": jid, "phone": (who or {}).get("phone"), "lid": (who or {}).get("lid"), **names})]


def _group(data: dict[str, Any], mode: str, own_jid: str | None) -> list[Op]:
    group = _rendered(data.get("group")) or _rendered(data.get("chat"))
    if not group or not group.get("jid"):
        return []
    changes: dict[str, Any] = data["changes"] if isinstance(data.get("changes"), dict) else data
    subject = changes.get("subject") or changes.get("name")
    if isinstance(subject, dict):
        subject = subject.get("new") or subject.get("value")
    return [("chat", {"chat_jid": group["jid"], "name": subject if isinstance(subject, str) else None})]


_EVENTS = {
    "message.received": lambda d, m, o: _message(d, m, o, from_me=False),
    "message.sent": lambda d, m, o: _message(d, m, o, from_me=True),
    "message.edited": _edited, "message.revoked": _revoked, "message.receipt": _receipt,
    "contact.updated": _contact, "group.update": _group,
}


def expand(extra: tuple[Op, ...] | list[Op], mode: str, own_jid: str | None = None) -> list[Op]:
    """A change's own store operations: `("history", payload)` becomes its chats, messages and
    contacts (in this MESSAGE_STORE mode); the others are already operations."""
    if mode == "off":
        return []
    ops: list[Op] = []
    for name, values in extra:
        ops.extend(history_ops(values, mode, own_jid) if name == "history" else [(name, values)])
    return ops


def history_ops(history: dict[str, Any], mode: str, own_jid: str | None = None) -> list[Op]:
    """A history sync chunk (runner_container/history.py) as store operations: each chat with
    what WhatsApp says of it, its messages (never over a live row), the names it gives."""
    ops: list[Op] = []
    for conversation in history.get("conversations") or []:
        jid = conversation.get("jid")
        if not jid:
            continue
        ops.append(("chat", {"chat_jid": jid, "name": conversation.get("name"),
                             "unread_count": conversation.get("unread_count"),
                             "archived": conversation.get("archived"), "pinned": conversation.get("pinned"),
                             "muted_until": timestamp(conversation.get("muted_until")),
                             "activity_at": timestamp(conversation.get("timestamp"))}))
        for message in conversation.get("messages") or []:
            if message.get("type") in PROTOCOL_TYPES:
                continue
            row = message_row(message, mode, own_jid, from_me=bool(message.get("from_me")), history=True)
            if row is not None:
                ops.append(("message", row))
    for contact in history.get("contacts") or []:
        if contact.get("jid"):
            ops.append(("contact", {k: contact.get(k) for k in ("jid", "phone", "lid", "push_name", "full_name",
                                                                  "first_name", "business_name")}))
    return ops
