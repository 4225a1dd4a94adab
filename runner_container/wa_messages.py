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
    preview, from the message log) when it knows the message; otherwise the author falls back
    to the chat (right for a 1:1 chat's incoming message) and the preview is empty."""
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, Message

    quoted_id = payload.get("quoted_message_id")
    if not quoted_id:
        return None
    ref = payload.get("quoted") or {}
    author = ref.get("sender") or (own_jid if ref.get("from_me") else None) or payload["to"]
    return ContextInfo(stanzaID=quoted_id, participant=_non_ad(author),
                       quotedMessage=Message(conversation=ref.get("preview") or ""))


def build(client: Any, payload: dict[str, Any], *, own_jid: Optional[str],
          fetch_url: Callable[[str, int], bytes],
          fetch_key: Optional[Callable[[str, int], bytes]] = None) -> Outgoing:
    """The neonize message for one payload. `client` is a neonize NewClient."""
    from neonize.builder import build_edit, build_revoke
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (ContactMessage, ExtendedTextMessage, LocationMessage,
                                                             Message)
    from neonize.utils.enum import VoteType

    kind = payload["type"]
    chat = to_jid(payload["to"])
    quote = _quote_context(payload, own_jid)

    if kind == "text":
        if quote is None:
            return Outgoing(chat, payload["text"], link_preview=bool(payload.get("link_preview")))
        return Outgoing(chat, Message(extendedTextMessage=ExtendedTextMessage(text=payload["text"],
                                                                                contextInfo=quote)))
    if kind in ("image", "video", "audio", "document", "sticker"):
        data = media_bytes(payload, fetch_url, fetch_key)
        caption = payload.get("caption")
        if kind == "image":
            message = client.build_image_message(data, caption=caption, viewonce=bool(payload.get("view_once")))
            field = message.imageMessage
        elif kind == "video":
            message = client.build_video_message(data, caption=caption, viewonce=bool(payload.get("view_once")))
            field = message.videoMessage
        elif kind == "audio":
            message = client.build_audio_message(data, ptt=bool(payload.get("voice_note")))
            field = message.audioMessage
        elif kind == "document":
            message = client.build_document_message(data, caption=caption, filename=payload.get("filename"),
                                                     title=payload.get("filename"), mimetype=payload.get("mime_type"))
            field = message.documentMessage
        else:
            message = client.build_sticker_message(data)
            field = message.stickerMessage
        if quote is not None:
            field.contextInfo.MergeFrom(quote)
        return Outgoing(chat, message)
    if kind == "location":
        location = LocationMessage(degreesLatitude=payload["latitude"], degreesLongitude=payload["longitude"],
                                   name=payload.get("name"), address=payload.get("address"))
        if quote is not None:
            location.contextInfo.MergeFrom(quote)
        return Outgoing(chat, Message(locationMessage=location))
    if kind == "contact":
        contact = ContactMessage(displayName=payload.get("display_name") or _vcard_name(payload["vcard"]),
                                 vcard=payload["vcard"])
        if quote is not None:
            contact.contextInfo.MergeFrom(quote)
        return Outgoing(chat, Message(contactMessage=contact))
    if kind == "reaction":
        # whose message it is: the message log's answer (`target`), else the API's `from_me` hint
        target = payload.get("target") or {}
        from_me = bool(target["from_me"]) if "from_me" in target else bool(payload.get("from_me"))
        author = target.get("sender") or (own_jid if from_me else None)
        sender = to_jid(_non_ad(author)) if author else chat
        message = client.build_reaction(chat, sender, payload["message_id"], payload["emoji"])
        # whatsmeow derives fromMe from its stored own JID; say it explicitly so the key is right
        key = message.reactionMessage.key
        key.fromMe = from_me
        if chat.Server == "g.us" and author and not from_me:
            key.participant = _non_ad(author)  # in a group the key names the message's author
        return Outgoing(chat, message)
    if kind == "edit":
        return Outgoing(chat, build_edit(chat, payload["message_id"], Message(conversation=payload["text"])))
    if kind == "revoke":
        if not own_jid:
            raise MessageBuildError("not_paired", "revoking needs the session's own JID (pair first)")
        me = to_jid(own_jid)
        return Outgoing(chat, build_revoke(chat, me, payload["message_id"], me))
    if kind == "poll":
        count = payload.get("selectable_count", 1)
        vote = VoteType.SINGLE if count == 1 else VoteType.MULTIPLE
        message = client.build_poll_vote_creation(payload["question"], payload["options"], vote)
        if count not in (0, 1):
            message.pollCreationMessage.selectableOptionsCount = count
        if quote is not None:
            message.pollCreationMessage.contextInfo.MergeFrom(quote)
        return Outgoing(chat, message)
    raise MessageBuildError("unsupported_type", f"message type '{kind}' is not supported")


def _vcard_name(vcard: str) -> str:
    for line in vcard.splitlines():
        if line.upper().startswith("FN:"):
            return line[3:].strip()
    return "Contact"
