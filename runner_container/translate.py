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

from typing import Any, Callable

from neonize.events import (CallOfferEv, ChatPresenceEv, ClientOutdatedEv, ConnectedEv, ConnectFailureEv,
                            DisconnectedEv, GroupInfoEv, HistorySyncEv, JoinedGroupEv, KeepAliveRestoredEv,
                            KeepAliveTimeoutEv, LoggedOutEv, MessageEv, PairStatusEv, PresenceEv, QREv,
                            ReceiptEv, StreamErrorEv, StreamReplacedEv, TemporaryBanEv)

from runner_container.translate_common import Resolver, Translated, jid_string, render_jid, ts
from runner_container.translate_groups import NameTracker, group_info_events, joined_group_event
from runner_container.translate_messages import (MEDIA_KINDS, PollLookup, decode_message, message_events,
                                                 poll_record, quoted_message_id)

__all__ = ["MEDIA_KINDS", "NameTracker", "decode_message", "jid_string", "poll_record", "quoted_message_id",
           "render_jid", "translate", "translate_failure"]

RECEIPT_TYPES = {1: "delivered", 2: "sender", 3: "retry", 4: "read", 5: "read_self", 6: "played",
                 7: "played_self", 8: "server_error", 9: "inactive", 10: "peer_msg", 11: "history_sync"}
# whatsmeow's ConnectFailureReason / LoggedOut reasons -> our last_error codes
FAILURE_CODES = {1: "connect_failure", 2: "logged_out", 3: "temporary_ban", 4: "main_device_gone",
                 5: "unknown_logout", 6: "client_outdated", 7: "bad_user_agent", 8: "internal_server_error",
                 9: "experimental", 10: "service_unavailable"}
TEMP_BAN_REASONS = {1: "sent_to_too_many_people", 2: "blocked_by_users", 3: "created_too_many_groups",
                    4: "sent_too_many_same_message", 5: "broadcast_list"}
RETRYABLE_FAILURES = {"connect_failure", "internal_server_error", "service_unavailable", "experimental"}


def translate(event: Any, resolve_pn: Resolver = None, polls: PollLookup = None,
              names: NameTracker | None = None) -> Translated:
    """`polls` finds a poll's secret and options by its id (to read votes); `names`
    remembers contacts' names (to report their changes): both per session."""
    if isinstance(event, MessageEv):
        return _message_ev(event, resolve_pn, polls, names)
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
        "is_group": source.IsGroup, "timestamp": ts(event.Timestamp)}})]


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
        "last_seen": ts(event.LastSeen)}})]


def _call_offer(event: Any, resolve_pn: Resolver) -> Translated:
    meta = event.basicCallMeta
    return [("event", {"event": "call.offer", "data": {
        "call_id": meta.callID, "from": render_jid(getattr(meta, "from"), resolve_pn),
        "timestamp": ts(meta.timestamp)}})]


def _message_ev(event: Any, resolve_pn: Resolver, polls: PollLookup, names: NameTracker | None) -> Translated:
    out: Translated = [("event", e) for e in message_events(event, resolve_pn, polls)]
    contact = names.observe(event, resolve_pn) if names is not None else None
    return ([("event", contact)] if contact else []) + out


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
    ReceiptEv: _receipt, ChatPresenceEv: _chat_presence, PresenceEv: _presence, CallOfferEv: _call_offer,
    JoinedGroupEv: lambda event, resolve_pn: [("event", joined_group_event(event, resolve_pn))],
    GroupInfoEv: lambda event, resolve_pn: [("event", e) for e in group_info_events(event, resolve_pn)],
    HistorySyncEv: _history,
}


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
