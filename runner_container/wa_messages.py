"""Turning a `send_message` command payload into a WhatsApp message with neonize.

The payload is what the API validated (`chalicelib/schemas/messages.py`): `to` is
already a JID string, media comes as `media_base64`, a `media_url` the runner fetches
(size-capped, SSRF-guarded) or a `media_key` in the media bucket (read with the same cap). Media messages go through neonize's own builders, which
upload the file to WhatsApp's media servers; everything else is a protobuf built here or
by neonize (`build_reaction`, `build_poll_vote_creation`, `build_edit`, `build_revoke`).
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Callable, Optional

MAX_MEDIA_BYTES = 64 * 1024 * 1024  # WhatsApp's own limit for most media is 16-100 MB


class MessageBuildError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Outgoing:
    chat: Any  # neonize JID
    message: Any  # neonize Message protobuf, or a str for plain text
    link_preview: bool = False


# the message types `build` knows (the emulator refuses the others as `build` does)
MESSAGE_TYPES = ("text", "image", "video", "audio", "document", "sticker", "location", "contact", "reaction",
                 "edit", "revoke", "poll")


def to_jid(text: str) -> Any:
    from neonize.utils.jid import build_jid

    user, _, server = text.partition("@")
    return build_jid(user, server or "s.whatsapp.net")


def media_bytes(payload: dict[str, Any], fetch_url: Callable[[str, int], bytes],
                fetch_key: Optional[Callable[[str, int], bytes]] = None) -> bytes:
    if payload.get("media_base64"):
        data = base64.b64decode(payload["media_base64"])
    elif payload.get("media_url"):
        data = fetch_url(payload["media_url"], MAX_MEDIA_BYTES)
    elif payload.get("media_key"):
        if fetch_key is None:
            raise MessageBuildError("media_storage_not_configured", "media_key needs MEDIA_BUCKET on the runner")
        data = fetch_key(payload["media_key"], MAX_MEDIA_BYTES)
    else:
        raise MessageBuildError("media_missing", "media_url, media_base64 or media_key is required")
    if len(data) > MAX_MEDIA_BYTES:
        raise MessageBuildError("media_too_large", f"media is {len(data)} bytes; the limit is {MAX_MEDIA_BYTES}")
    return data


def _non_ad(jid: Optional[str]) -> Optional[str]:
    """`5511...:12@s.whatsapp.net` -> `5511...@s.whatsapp.net` (a person, not one of their devices)."""
    if not jid:
        return None
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server}"


def _quote_context(payload: dict[str, Any], own_jid: Optional[str]) -> Any:
    """The ContextInfo of a reply, as neonize's own `build_reply_message` makes it: the quoted
    message's id, its author (non-AD JID) and its content. The runner adds `quoted` (author and
    preview, from the message store) when it knows the message; otherwise the author falls back
    to the chat (right for a 1:1 chat's incoming message) and the preview is empty."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, Message

    quoted_id = payload.get("quoted_message_id")
    if not quoted_id:
        return None
    ref = payload.get("quoted") or {}
    author = ref.get("sender") or (own_jid if ref.get("from_me") else None) or payload["to"]
    return ContextInfo(stanzaID=quoted_id, participant=_non_ad(author),
                       quotedMessage=Message(conversation=ref.get("preview") or ""))


def mention_jids(payload: dict[str, Any]) -> list[str]:
    """contextInfo.mentionedJID: the `mentions`, then a group's participants for
    `mention_all` (the runner puts them in `mention_all_jids` from group_info)."""
    people = [_non_ad(j) for j in (*(payload.get("mentions") or []), *(payload.get("mention_all_jids") or []))]
    return list(dict.fromkeys(j for j in people if j))


def mentioned_text(text: Optional[str], payload: dict[str, Any]) -> Optional[str]:
    """The text or caption with `@<number>` for each of `mentions` it does not name yet
    (WhatsApp shows a mention where the text says @<number>; `mention_all` stays silent)."""
    missing = [f"@{jid.split('@')[0]}" for jid in (payload.get("mentions") or [])]
    missing = [tag for tag in missing if tag not in (text or "")]
    if not missing:
        return text
    return " ".join([text, *missing]) if text else " ".join(missing)


@dataclass
class _Build:
    """What every message builder needs: the client, the payload, the chat and the quote."""

    client: Any
    payload: dict[str, Any]
    chat: Any
    quote: Any
    own_jid: Optional[str]
    fetch_url: Callable[[str, int], bytes]
    fetch_key: Optional[Callable[[str, int], bytes]]

    def quoted(self, field: Any) -> Any:
        if self.quote is not None:
            field.contextInfo.MergeFrom(self.quote)
        mentioned = mention_jids(self.payload)
        if mentioned:  # exactly these (neonize's media builders add the caption's @numbers on their own)
            del field.contextInfo.mentionedJID[:]
            field.contextInfo.mentionedJID.extend(mentioned)
        return field


def build(client: Any, payload: dict[str, Any], *, own_jid: Optional[str],
          fetch_url: Callable[[str, int], bytes],
          fetch_key: Optional[Callable[[str, int], bytes]] = None) -> Outgoing:
    """The neonize message for one payload. `client` is a neonize NewClient."""
    builder = _BUILDERS.get(payload["type"])
    if builder is None:
        raise MessageBuildError("unsupported_type", f"message type '{payload['type']}' is not supported")
    chat = to_jid(payload["to"])
    return builder(_Build(client, payload, chat, _quote_context(payload, own_jid), own_jid, fetch_url, fetch_key))


def _text(b: _Build) -> Outgoing:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ExtendedTextMessage, Message

    text = mentioned_text(b.payload["text"], b.payload)
    if b.quote is None and not mention_jids(b.payload):
        return Outgoing(b.chat, text, link_preview=bool(b.payload.get("link_preview")))
    return Outgoing(b.chat, Message(extendedTextMessage=b.quoted(ExtendedTextMessage(text=text))))


def _media(b: _Build) -> Outgoing:
    payload, client, kind = b.payload, b.client, b.payload["type"]
    data = media_bytes(payload, b.fetch_url, b.fetch_key)
    caption = mentioned_text(payload.get("caption"), payload)
    if kind == "image":
        message = client.build_image_message(data, caption=caption, viewonce=bool(payload.get("view_once")))
    elif kind == "video":
        message = client.build_video_message(data, caption=caption, viewonce=bool(payload.get("view_once")))
    elif kind == "audio":
        message = client.build_audio_message(data, ptt=bool(payload.get("voice_note")))
    elif kind == "document":
        message = client.build_document_message(data, caption=caption, filename=payload.get("filename"),
                                                 title=payload.get("filename"), mimetype=payload.get("mime_type"))
    else:
        message = client.build_sticker_message(data)
    b.quoted(getattr(message, f"{kind}Message"))
    return Outgoing(b.chat, message)


def _location(b: _Build) -> Outgoing:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import LocationMessage, Message

    p = b.payload
    location = b.quoted(LocationMessage(degreesLatitude=p["latitude"], degreesLongitude=p["longitude"],
                                        name=p.get("name"), address=p.get("address")))
    return Outgoing(b.chat, Message(locationMessage=location))


def _contact(b: _Build) -> Outgoing:
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContactMessage, Message

    p = b.payload
    contact = b.quoted(ContactMessage(displayName=p.get("display_name") or _vcard_name(p["vcard"]),
                                      vcard=p["vcard"]))
    return Outgoing(b.chat, Message(contactMessage=contact))


def _reaction(b: _Build) -> Outgoing:
    # whose message it is: the message store's answer (`target`), else the API's `from_me` hint
    payload, chat = b.payload, b.chat
    target = payload.get("target") or {}
    from_me = bool(target["from_me"]) if "from_me" in target else bool(payload.get("from_me"))
    author = target.get("sender") or (b.own_jid if from_me else None)
    sender = to_jid(_non_ad(author)) if author else chat
    message = b.client.build_reaction(chat, sender, payload["message_id"], payload["emoji"])
    # whatsmeow derives fromMe from its stored own JID; say it explicitly so the key is right
    key = message.reactionMessage.key
    key.fromMe = from_me
    if chat.Server == "g.us" and author and not from_me:
        key.participant = _non_ad(author)  # in a group the key names the message's author
    return Outgoing(chat, message)


def _edit(b: _Build) -> Outgoing:
    from neonize.builder import build_edit
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    return Outgoing(b.chat, build_edit(b.chat, b.payload["message_id"], Message(conversation=b.payload["text"])))


def _revoke(b: _Build) -> Outgoing:
    from neonize.builder import build_revoke

    if not b.own_jid:
        raise MessageBuildError("not_paired", "revoking needs the session's own JID (pair first)")
    me = to_jid(b.own_jid)
    return Outgoing(b.chat, build_revoke(b.chat, me, b.payload["message_id"], me))


def _poll(b: _Build) -> Outgoing:
    from neonize.utils.enum import VoteType

    count = b.payload.get("selectable_count", 1)
    vote = VoteType.SINGLE if count == 1 else VoteType.MULTIPLE
    message = b.client.build_poll_vote_creation(b.payload["question"], b.payload["options"], vote)
    if count not in (0, 1):
        message.pollCreationMessage.selectableOptionsCount = count
    b.quoted(message.pollCreationMessage)
    return Outgoing(b.chat, message)


_BUILDERS: dict[str, Callable[[_Build], Outgoing]] = {
    "text": _text, "image": _media, "video": _media, "audio": _media, "document": _media, "sticker": _media,
    "location": _location, "contact": _contact, "reaction": _reaction, "edit": _edit, "revoke": _revoke,
    "poll": _poll}


def _vcard_name(vcard: str) -> str:
    for line in vcard.splitlines():
        if line.upper().startswith("FN:"):
            return line[3:].strip()
    return "Contact"
