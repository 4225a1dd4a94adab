"""A neonize `MessageEv` -> the contract's message events.

One WhatsApp message event can be several things for a receiver: a new message
(`message.received` / `message.sent`), an edit of an earlier one (`message.edited`), a
deletion (`message.revoked`) or a vote on a poll (`poll.vote`, decrypted with the poll's
secret through `polls`, see `runner_container/poll_crypto.py`). Wrappers
(disappearing, view-once, document-with-caption, edited) are unwrapped to the real
content, with `ephemeral` / `view_once` flags. Pure functions over the protobufs.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from runner_container import poll_crypto
from runner_container.translate_common import Resolver, jid_string, render_jid, render_jid_text, ts

# poll id -> {"creator_jid", "creator_alt", "secret", "options"} (chalicelib/repositories/polls.py)
PollLookup = Optional[Callable[[str], Optional[dict[str, Any]]]]

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_QUOTABLE = ("extendedTextMessage", "imageMessage", "videoMessage", "audioMessage", "documentMessage",
             "stickerMessage", "locationMessage", "contactMessage", "pollCreationMessage")
_EPHEMERAL_WRAPPERS = ("ephemeralMessage",)
_VIEW_ONCE_WRAPPERS = ("viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension")
_WRAPPERS = (*_EPHEMERAL_WRAPPERS, *_VIEW_ONCE_WRAPPERS, "documentWithCaptionMessage", "editedMessage")
POLL_FIELDS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3", "pollCreationMessageV5")
REVOKE, MESSAGE_EDIT = 0, 14  # waE2E ProtocolMessage.Type
ADMIN_REVOKE = "8"  # whatsmeow EditAttribute: "7" sender revoke, "8" admin revoke


def unwrap(message: Any) -> tuple[Any, dict[str, bool]]:
    """The innermost real message and what wrapped it ({"ephemeral", "view_once"})."""
    flags = {"ephemeral": False, "view_once": False}
    for _ in range(5):  # wrappers nest (ephemeral around view-once); whatsmeow's UnwrapRaw goes as deep
        wrapper = next((w for w in _WRAPPERS if message.HasField(w)), None)
        if wrapper is None:
            break
        flags["ephemeral"] |= wrapper in _EPHEMERAL_WRAPPERS
        flags["view_once"] |= wrapper in _VIEW_ONCE_WRAPPERS
        message = getattr(message, wrapper).message
    return message, flags


def _mentions(part: Any) -> dict[str, Any]:
    if not part.HasField("contextInfo") or not part.contextInfo.mentionedJID:
        return {}
    return {"mentions": list(part.contextInfo.mentionedJID)}


def _decode_media(media: Any, field: str) -> dict[str, Any]:
    kind = field[:-len("Message")]
    body: dict[str, Any] = {"type": kind, "mime_type": media.mimetype or None,
                            "file_length": int(media.fileLength) if media.fileLength else None}
    if hasattr(media, "caption") and media.caption:
        body["caption"] = media.caption
    if kind == "document":
        body["filename"] = media.fileName or None
    if kind == "audio":
        body["ptt"] = bool(getattr(media, "PTT", False))
    return {**body, **_mentions(media)}


def _decode_poll(poll: Any, field: str) -> dict[str, Any]:
    return {"type": "poll", "name": poll.name, "options": [o.optionName for o in poll.options],
            "selectable_count": int(poll.selectableOptionsCount)}


_DECODERS: tuple[tuple[str, Callable[[Any, str], dict[str, Any]]], ...] = (
    ("extendedTextMessage", lambda m, _: {"type": "text", "text": m.text, **_mentions(m)}),
    *((f"{kind}Message", _decode_media) for kind in MEDIA_KINDS),
    ("locationMessage", lambda loc, _: {"type": "location", "latitude": loc.degreesLatitude,
                                        "longitude": loc.degreesLongitude, "name": loc.name or None,
                                        "address": loc.address or None}),
    ("contactMessage", lambda c, _: {"type": "contact", "display_name": c.displayName, "vcard": c.vcard}),
    ("reactionMessage", lambda r, _: {"type": "reaction", "message_id": r.key.ID, "emoji": r.text,
                                      "removed": not r.text}),
    *((field, _decode_poll) for field in POLL_FIELDS),
)


def decode_message(message: Any) -> dict[str, Any]:
    """The message body as the contract's `type` + fields (wrappers unwrapped)."""
    if message is None:
        return {"type": "unknown"}
    message, _ = unwrap(message)
    if message.conversation:
        return {"type": "text", "text": message.conversation}
    for field, decode in _DECODERS:
        if message.HasField(field):
            return decode(getattr(message, field), field)
    return {"type": "unknown"}


def quoted_message_id(message: Any) -> str | None:
    """The id of the message this one replies to (contextInfo.stanzaID), if any."""
    if message is None:
        return None
    message, _ = unwrap(message)
    for field in _QUOTABLE:
        if message.HasField(field):
            part = getattr(message, field)
            if part.HasField("contextInfo") and part.contextInfo.stanzaID:
                return part.contextInfo.stanzaID
            return None
    return None


def _flags(event: Any, wrapped: dict[str, bool], inner: Any) -> dict[str, bool]:
    media_view_once = any(inner.HasField(f"{kind}Message") and getattr(getattr(inner, f"{kind}Message"), "viewOnce",
                                                                       False) for kind in ("image", "video", "audio"))
    return {"ephemeral": wrapped["ephemeral"] or bool(event.IsEphemeral),
            "view_once": wrapped["view_once"] or media_view_once or bool(event.IsViewOnce or event.IsViewOnceV2
                                                                         or event.IsViewOnceV2Extension)}


def message_events(event: Any, resolve_pn: Resolver = None, polls: PollLookup = None) -> list[dict[str, Any]]:
    """The contract events of one MessageEv: `{"event", "data"}` each (none for protocol noise)."""
    inner, wrapped = unwrap(event.Message)
    if inner.HasField("protocolMessage"):
        protocol = inner.protocolMessage
        if protocol.type == MESSAGE_EDIT and protocol.HasField("editedMessage"):
            return [_edited(event, protocol, resolve_pn)]
        if protocol.type == REVOKE and protocol.HasField("key"):
            return [_revoked(event, protocol, resolve_pn)]
        return []  # key shares, history sync notices, ephemeral settings...: not messages
    if inner.HasField("pollUpdateMessage"):
        return [_poll_vote(event, inner.pollUpdateMessage, resolve_pn, polls)]
    return [_message(event, inner, wrapped, resolve_pn)]


def _base(event: Any, resolve_pn: Resolver) -> dict[str, Any]:
    source = event.Info.MessageSource
    return {"chat": render_jid(source.Chat, resolve_pn), "is_group": source.IsGroup, "from_me": source.IsFromMe}


def _message(event: Any, inner: Any, wrapped: dict[str, bool], resolve_pn: Resolver) -> dict[str, Any]:
    info = event.Info
    source = info.MessageSource
    data = {
        "message_id": info.ID,
        "chat": render_jid(source.Chat, resolve_pn),
        "from": render_jid(source.Sender, resolve_pn, source.SenderAlt),
        "is_group": source.IsGroup,
        "from_me": source.IsFromMe,
        "push_name": info.Pushname or None,
        "timestamp": ts(info.Timestamp),
        "quoted_message_id": quoted_message_id(inner),
        **_flags(event, wrapped, inner),
        **decode_message(inner),
    }
    return {"event": "message.sent" if source.IsFromMe else "message.received", "data": data}


def _edited(event: Any, protocol: Any, resolve_pn: Resolver) -> dict[str, Any]:
    source = event.Info.MessageSource
    new = decode_message(protocol.editedMessage)
    content = {"text": new["text"]} if new["type"] == "text" else {"caption": new.get("caption")}
    return {"event": "message.edited", "data": {
        "message_id": protocol.key.ID, **_base(event, resolve_pn),
        "sender": render_jid(source.Sender, resolve_pn, source.SenderAlt),
        "type": new["type"], **content, **({"mentions": new["mentions"]} if new.get("mentions") else {}),
        "edited_at": ts(protocol.timestampMS or event.Info.Timestamp), "edit_id": event.Info.ID}}


def _revoked(event: Any, protocol: Any, resolve_pn: Resolver) -> dict[str, Any]:
    info = event.Info
    source = info.MessageSource
    key = protocol.key
    revoker = render_jid(source.Sender, resolve_pn, source.SenderAlt)
    if key.participant:
        author = render_jid_text(key.participant, resolve_pn)
    else:  # the key is the revoker's view: fromMe = the revoker wrote it
        author = revoker if key.fromMe else None
    revoker_jids = {poll_crypto.non_ad(j) for j in (jid_string(source.Sender), jid_string(source.SenderAlt)) if j}
    by_admin = info.Edit == ADMIN_REVOKE or (
        source.IsGroup and not key.fromMe and bool(key.participant) and info.Edit != "7"
        and poll_crypto.non_ad(key.participant) not in revoker_jids)
    return {"event": "message.revoked", "data": {
        "message_id": key.ID, **_base(event, resolve_pn), "sender": author, "revoked_by": revoker,
        "by_admin": by_admin, "timestamp": ts(info.Timestamp)}}


def _poll_creator_from_key(event: Any, key: Any) -> str | None:
    """whatsmeow's getOrigSenderFromKey: who sent the poll, as the voter's key names it."""
    source = event.Info.MessageSource
    if key.fromMe:
        return jid_string(source.Sender)
    if source.Chat.Server in ("s.whatsapp.net", "lid"):
        return key.remoteJID or None
    return key.participant or None


def _poll_vote(event: Any, update: Any, resolve_pn: Resolver, polls: PollLookup) -> dict[str, Any]:
    info = event.Info
    source = info.MessageSource
    key = update.pollCreationMessageKey
    data: dict[str, Any] = {
        "poll_id": key.ID, "message_id": info.ID, **_base(event, resolve_pn),
        "voter": render_jid(source.Sender, resolve_pn, source.SenderAlt), "options": None,
        "timestamp": ts(update.senderTimestampMS or info.Timestamp)}
    poll = polls(key.ID) if polls is not None else None
    if poll is None:
        return {"event": "poll.vote", "data": {**data, "error": "poll_unknown"}}
    creators = [_poll_creator_from_key(event, key), poll.get("creator_jid"), poll.get("creator_alt")]
    voters = [jid_string(source.Sender), jid_string(source.SenderAlt)]
    selected = poll_crypto.decrypt_vote(bytes(poll["secret"]), key.ID, [c for c in creators if c],
                                        [v for v in voters if v], update.vote.encPayload, update.vote.encIV)
    if selected is None:
        return {"event": "poll.vote", "data": {**data, "error": "decrypt_failed"}}
    return {"event": "poll.vote", "data": {**data, "options": poll_crypto.option_names(poll["options"], selected)}}


def poll_record(event: Any) -> dict[str, Any] | None:
    """What the runner must keep of a poll it receives (or sent from another device) to
    read its votes later: id, chat, creator, secret, option names. None for other messages."""
    outer = event.Message
    inner, _ = unwrap(outer)
    field = next((f for f in POLL_FIELDS if inner.HasField(f)), None)
    if field is None:
        return None
    poll = getattr(inner, field)
    secret = (inner.messageContextInfo.messageSecret or outer.messageContextInfo.messageSecret or poll.encKey)
    if not secret:
        return None
    source = event.Info.MessageSource
    alt = jid_string(source.SenderAlt)
    return {"poll_id": event.Info.ID, "chat_jid": jid_string(source.Chat) or "",
            "creator_jid": poll_crypto.non_ad(jid_string(source.Sender) or ""),
            "creator_alt": poll_crypto.non_ad(alt) if alt else None, "secret": bytes(secret),
            "name": poll.name, "options": [o.optionName for o in poll.options],
            "selectable_count": int(poll.selectableOptionsCount)}
