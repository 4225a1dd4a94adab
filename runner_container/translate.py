"""neonize (whatsmeow) events -> what the session actor understands.

`translate(event, resolve_pn)` returns a list of `(kind, data)` pairs:

* lifecycle kinds the session actor turns into state transitions: `qr`, `paired`,
  `pair_failed`, `connected`, `disconnected`, `logged_out`, `fatal` (no retry:
  client_outdated, temporary_ban, stream_replaced...), `retryable`;
* `event`: a contract event, `data = {"event": "message.received", "data": {...}}`, that
  the actor records with the session's next sequence number.

Pure functions over the protobuf messages, so tests feed real neonize event objects.
JIDs are rendered as `{"jid", "phone", "lid"}`: a LID (`…@lid`) is turned into the phone
number through `resolve_pn` (neonize's `get_pn_from_lid`) or the message's alternate
address when whatsmeow gives one.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Optional

from neonize.events import (CallOfferEv, ChatPresenceEv, ClientOutdatedEv, ConnectedEv, ConnectFailureEv,
                            DisconnectedEv, GroupInfoEv, HistorySyncEv, JoinedGroupEv, KeepAliveRestoredEv,
                            KeepAliveTimeoutEv, LoggedOutEv, MessageEv, PairStatusEv, PresenceEv, QREv,
                            ReceiptEv, StreamErrorEv, StreamReplacedEv, TemporaryBanEv)

Resolver = Optional[Callable[[Any], Optional[str]]]
Translated = list[tuple[str, dict[str, Any]]]

RECEIPT_TYPES = {1: "delivered", 2: "sender", 3: "retry", 4: "read", 5: "read_self", 6: "played",
                 7: "played_self", 8: "server_error", 9: "inactive", 10: "peer_msg", 11: "history_sync"}
# whatsmeow's ConnectFailureReason / LoggedOut reasons -> our last_error codes
FAILURE_CODES = {1: "connect_failure", 2: "logged_out", 3: "temporary_ban", 4: "main_device_gone",
                 5: "unknown_logout", 6: "client_outdated", 7: "bad_user_agent", 8: "internal_server_error",
                 9: "experimental", 10: "service_unavailable"}
TEMP_BAN_REASONS = {1: "sent_to_too_many_people", 2: "blocked_by_users", 3: "created_too_many_groups",
                    4: "sent_too_many_same_message", 5: "broadcast_list"}
RETRYABLE_FAILURES = {"connect_failure", "internal_server_error", "service_unavailable", "experimental"}


def jid_string(jid: Any) -> str | None:
    if jid is None or not getattr(jid, "User", "") and not getattr(jid, "Server", ""):
        return None
    user = jid.User
    if getattr(jid, "Device", 0):
        user = f"{user}:{jid.Device}"
    return f"{user}@{jid.Server}" if user else jid.Server


def render_jid(jid: Any, resolve_pn: Resolver = None, alt: Any = None) -> dict[str, Any] | None:
    text = jid_string(jid)
    if text is None:
        return None
    out: dict[str, Any] = {"jid": text, "phone": None}
    if jid.Server == "s.whatsapp.net":
        out["phone"] = jid.User
    elif jid.Server == "lid":
        out["lid"] = text
        if alt is not None and getattr(alt, "Server", "") == "s.whatsapp.net" and alt.User:
            out["phone"] = alt.User
        elif resolve_pn is not None:
            try:
                out["phone"] = resolve_pn(jid)
            except Exception:  # noqa: BLE001 - unknown mapping: the LID stays as it is
                out["phone"] = None
    return out


def _ts(seconds: int | float) -> str | None:
    if not seconds:
        return None
    if seconds > 10_000_000_000:  # milliseconds
        seconds = seconds / 1000
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def decode_message(message: Any) -> dict[str, Any]:
    """The message body as the contract's `type` + fields (text, media, location, contact, reaction)."""
    if message is None:
        return {"type": "unknown"}
    if message.conversation:
        return {"type": "text", "text": message.conversation}
    for field, decode in _DECODERS:
        if message.HasField(field):
            return decode(getattr(message, field), field)
    return {"type": "unknown"}


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
    return body


_DECODERS: tuple[tuple[str, Callable[[Any, str], dict[str, Any]]], ...] = (
    ("extendedTextMessage", lambda m, _: {"type": "text", "text": m.text}),
    *((f"{kind}Message", _decode_media) for kind in ("image", "video", "audio", "document", "sticker")),
    ("locationMessage", lambda loc, _: {"type": "location", "latitude": loc.degreesLatitude,
                                        "longitude": loc.degreesLongitude, "name": loc.name or None,
                                        "address": loc.address or None}),
    ("contactMessage", lambda c, _: {"type": "contact", "display_name": c.displayName, "vcard": c.vcard}),
    ("reactionMessage", lambda r, _: {"type": "reaction", "message_id": r.key.ID, "emoji": r.text}),
)


MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_QUOTABLE = ("extendedTextMessage", "imageMessage", "videoMessage", "audioMessage", "documentMessage",
             "stickerMessage", "locationMessage", "contactMessage")


def quoted_message_id(message: Any) -> str | None:
    """The id of the message this one replies to (contextInfo.stanzaID), if any."""
    if message is None:
        return None
    for field in _QUOTABLE:
        if message.HasField(field):
            part = getattr(message, field)
            if part.HasField("contextInfo") and part.contextInfo.stanzaID:
                return part.contextInfo.stanzaID
            return None
    return None


def translate(event: Any, resolve_pn: Resolver = None) -> Translated:
    handler = _TRANSLATORS.get(type(event))
    if handler is None:
        handler = next((h for cls, h in _TRANSLATORS.items() if isinstance(event, cls)), None)
    return handler(event, resolve_pn) if handler is not None else []


def _qr(event: Any, resolve_pn: Resolver) -> Translated:
    codes = list(event.Codes)
    return [("qr", {"code": codes[0], "codes": codes})] if codes else []


def _pair_status(event: Any, resolve_pn: Resolver) -> Translated:
    if event.Status == PairStatusEv.SUCCESS:
        return [("paired", {"jid": jid_string(event.ID), "business_name": event.BusinessName or None,
                            "platform": event.Platform or None})]
    return [("pair_failed", {"code": "pair_failed", "message": event.Error or "pairing failed"})]


def _logged_out(event: Any, resolve_pn: Resolver) -> Translated:
    reason = FAILURE_CODES.get(event.Reason, "logged_out")
    return [("logged_out", {"reason": reason, "on_connect": event.OnConnect})]


def _temporary_ban(event: Any, resolve_pn: Resolver) -> Translated:
    reason = TEMP_BAN_REASONS.get(event.Code, "unknown")
    return [("fatal", {"code": "temporary_ban", "message": f"WhatsApp banned the number temporarily: {reason}",
                       "ban_reason": reason, "expires_in_seconds": int(event.Expire) or None})]


def _connect_failure(event: Any, resolve_pn: Resolver) -> Translated:
    code = FAILURE_CODES.get(event.Reason, "connect_failure")
    message = event.Message or code.replace("_", " ")
    if code == "logged_out" or code == "main_device_gone":
        return [("logged_out", {"reason": code})]
    kind = "retryable" if code in RETRYABLE_FAILURES else "fatal"
    return [(kind, {"code": code, "message": f"WhatsApp refused the connection: {message}"})]


def _receipt(event: Any, resolve_pn: Resolver) -> Translated:
    source = event.MessageSource
    return [("event", {"event": "message.receipt", "data": {
        "message_ids": list(event.MessageIDs), "type": RECEIPT_TYPES.get(event.Type, "unknown"),
        "chat": render_jid(source.Chat, resolve_pn),
        "sender": render_jid(source.Sender, resolve_pn, source.SenderAlt),
        "is_group": source.IsGroup, "timestamp": _ts(event.Timestamp)}})]


def _chat_presence(event: Any, resolve_pn: Resolver) -> Translated:
    source = event.MessageSource
    return [("event", {"event": "chat.presence", "data": {
        "chat": render_jid(source.Chat, resolve_pn),
        "sender": render_jid(source.Sender, resolve_pn, source.SenderAlt),
        "state": "composing" if event.State == 1 else "paused",
        "media": "audio" if event.Media == 2 else "text"}})]


def _presence(event: Any, resolve_pn: Resolver) -> Translated:
    return [("event", {"event": "presence.update", "data": {
        "from": render_jid(event.From, resolve_pn), "available": not event.Unavailable,
        "last_seen": _ts(event.LastSeen)}})]


def _call_offer(event: Any, resolve_pn: Resolver) -> Translated:
    meta = event.basicCallMeta
    return [("event", {"event": "call.offer", "data": {
        "call_id": meta.callID, "from": render_jid(getattr(meta, "from"), resolve_pn),
        "timestamp": _ts(meta.timestamp)}})]


def _group(event: Any, resolve_pn: Resolver) -> Translated:
    jid = event.JID if isinstance(event, GroupInfoEv) else event.GroupInfo.JID
    return [("event", {"event": "group.update", "data": {
        "group": render_jid(jid), "kind": "joined" if isinstance(event, JoinedGroupEv) else "changed"}})]


def _history(event: Any, resolve_pn: Resolver) -> Translated:
    """A history sync chunk: stored by the runner, bounded by HISTORY_SYNC (runner_container/history.py)."""
    from runner_container.history import translate_history  # history imports this module

    return [("event", {"event": "history.synced", "data": {"history": translate_history(event)}})]


def _fixed(*items: tuple[str, dict[str, Any]]) -> Callable[[Any, Resolver], Translated]:
    return lambda event, resolve_pn: [(kind, dict(data)) for kind, data in items]


_TRANSLATORS: dict[type, Callable[[Any, Resolver], Translated]] = {
    QREv: _qr, PairStatusEv: _pair_status,
    ConnectedEv: _fixed(("connected", {})),
    DisconnectedEv: _fixed(("disconnected", {"reason": "network"})),
    KeepAliveTimeoutEv: _fixed(), KeepAliveRestoredEv: _fixed(),
    LoggedOutEv: _logged_out,
    StreamReplacedEv: _fixed(("fatal", {"code": "stream_replaced",
                                        "message": "another client connected with this device (stream replaced)"})),
    TemporaryBanEv: _temporary_ban,
    ClientOutdatedEv: _fixed(("fatal", {"code": "client_outdated",
                                        "message": "WhatsApp refused this client version (405 client outdated)"})),
    ConnectFailureEv: _connect_failure,
    StreamErrorEv: lambda event, _: [("retryable", {"code": "stream_error",
                                                    "message": f"stream error {event.Code}".strip()})],
    MessageEv: lambda event, resolve_pn: [("event", _message(event, resolve_pn))],
    ReceiptEv: _receipt, ChatPresenceEv: _chat_presence, PresenceEv: _presence, CallOfferEv: _call_offer,
    JoinedGroupEv: _group, GroupInfoEv: _group, HistorySyncEv: _history,
}


def _message(event: Any, resolve_pn: Resolver) -> dict[str, Any]:
    info = event.Info
    source = info.MessageSource
    body = decode_message(event.Message)
    data = {
        "message_id": info.ID,
        "chat": render_jid(source.Chat, resolve_pn),
        "from": render_jid(source.Sender, resolve_pn, source.SenderAlt),
        "is_group": source.IsGroup,
        "from_me": source.IsFromMe,
        "push_name": info.Pushname or None,
        "timestamp": _ts(info.Timestamp),
        "quoted_message_id": quoted_message_id(event.Message),
        **body,
    }
    return {"event": "message.sent" if source.IsFromMe else "message.received", "data": data}


def translate_failure(code: str) -> tuple[str, dict[str, Any]]:
    """What `translate` yields for the event whatsmeow sends for `code` (used by the emulator)."""
    from neonize.events import ClientOutdatedEv, ConnectFailureEv, LoggedOutEv, StreamReplacedEv, TemporaryBanEv

    events = {
        "logged_out": LoggedOutEv(OnConnect=False, Reason=2),
        "client_outdated": ClientOutdatedEv(),
        "temporary_ban": TemporaryBanEv(Code=1, Expire=3600),
        "stream_replaced": StreamReplacedEv(),
        "service_unavailable": ConnectFailureEv(Reason=10),
    }
    if code not in events:
        from runner_container.drivers.base import DriverError

        raise DriverError("unknown_failure", f"unknown failure {code!r}; one of {', '.join(events)}")
    return translate(events[code])[0]
