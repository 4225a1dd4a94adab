"""Per-session behaviour settings (issue 17) as the runner applies them.

The settings live on the `sessions` row (`PUT /sessions/{id}`). The actor reads them at
every load of the row: when it connects, at every reconcile (RUNNER_RECONCILE_INTERVAL)
and at once when the API records an `apply_settings` command after a change. Nothing
here steps the state machine, so a change never reconnects the session: `always_online`
sends one presence, the others change what happens to the next event.

- `always_online`: presence `available` at every login and when turned on; `unavailable`
  when turned off while logged in (whatsmeow keeps the presence for the connection's life).
- `ignore_groups` / `ignore_status_broadcast`: a chat event (message.*, chat.presence,
  call.offer) of a group / of `status@broadcast` is dropped before it is stored or emitted.
  `group.update` (the account joined or a group changed) is not a chat event and stays.
- `auto_read`: a received message (not ours, not a status) gets a read receipt right after
  its event is written.
- `reject_calls`: a `call.offer` is written, then rejected (whatsmeow's RejectCall on the
  connection that got it), `reject_call_message` is sent to the caller as a text (a normal
  `message.sent`, in the message log) and `call.rejected` is written.
A refusal by WhatsApp is logged and never fails the event that caused it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from chalicelib.commands.catalog import COMMANDS
from chalicelib.repositories.session_store import StateChange
from runner_container import handlers
from runner_container.drivers.base import DriverError

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.session import SessionActor

STATUS_BROADCAST = "status@broadcast"
CHAT_EVENTS = ("message.received", "message.sent", "message.receipt", "chat.presence", "call.offer")


@dataclass(frozen=True)
class Behaviour:
    always_online: bool = False
    ignore_groups: bool = False
    ignore_status_broadcast: bool = False
    auto_read: bool = False
    reject_calls: bool = False
    reject_call_message: str | None = None
    send_rate: int | None = None  # messages a minute (runner_container/pacing.py)
    typing_simulation: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Behaviour":
        """The settings of a `SessionStore.load` row (a column it lacks keeps its default)."""
        defaults = cls()
        return cls(**{f.name: row.get(f.name, getattr(defaults, f.name)) for f in fields(cls)})


def chat_of(data: dict[str, Any]) -> str:
    """The chat JID of an event's data (`chat` is rendered as {jid, phone} by the drivers)."""
    chat = data.get("chat")
    if isinstance(chat, dict):
        return str(chat.get("jid") or "")
    return str(chat or "")


def ignored(behaviour: Behaviour, name: str, data: dict[str, Any]) -> bool:
    """Whether the settings drop this event (neither stored nor emitted)."""
    if name not in CHAT_EVENTS:
        return False
    chat = chat_of(data)
    if behaviour.ignore_status_broadcast and chat == STATUS_BROADCAST:
        return True
    return behaviour.ignore_groups and (bool(data.get("is_group")) or chat.endswith("@g.us"))


def apply(actor: "SessionActor", old: Behaviour, new: Behaviour) -> None:
    """A change read from the row: what must be sent now (only while logged in)."""
    if old.always_online != new.always_online and actor.state.logged_in:
        _presence(actor, "available" if new.always_online else "unavailable")


def on_login(actor: "SessionActor") -> None:
    if actor.behaviour.always_online:
        _presence(actor, "available")


def after_received(actor: "SessionActor", name: str, data: dict[str, Any]) -> None:
    """What the settings do after an event was written: `auto_read`, `reject_calls`."""
    if name == "call.offer" and actor.behaviour.reject_calls:
        _reject_call(actor, data)
    elif name == "message.received" and actor.behaviour.auto_read and not data.get("from_me"):
        _read(actor, data)


def _read(actor: "SessionActor", data: dict[str, Any]) -> None:
    """The read receipt of a received message (in a group it names the author)."""
    chat = chat_of(data)
    message_id = data.get("message_id")
    client = actor.client
    if not chat or not message_id or chat == STATUS_BROADCAST or client is None or not actor.state.logged_in:
        return
    sender = data.get("from")
    author = sender.get("jid") if isinstance(sender, dict) and data.get("is_group") else None
    try:
        client.mark_read(chat, [str(message_id)], author)
    except DriverError as exc:
        actor.log.warning("auto_read: the read receipt was refused",
                          extra={"session_id": actor.session_id, "code": exc.code, "error": exc.message[:200]})


def _reject_call(actor: "SessionActor", data: dict[str, Any]) -> None:
    given = data.get("from")
    caller: dict[str, Any] = given if isinstance(given, dict) else {}
    caller_jid, call_id = str(caller.get("jid") or ""), str(data.get("call_id") or "")
    client = actor.client
    if not caller_jid or not call_id or client is None or not actor.state.logged_in:
        return
    try:
        client.reject_call(caller_jid, call_id)
    except DriverError as exc:
        actor.log.warning("reject_calls: WhatsApp refused the rejection",
                          extra={"session_id": actor.session_id, "code": exc.code, "error": exc.message[:200]})
        return
    answer: dict[str, Any] = {"call_id": call_id, "from": caller, "timestamp": data.get("timestamp"),
                              "message_sent": False, "message_id": None}
    text = actor.behaviour.reject_call_message
    if text:
        try:
            sent = handlers.send_message(actor, COMMANDS["send_message"],
                                         {"to": _bare(caller_jid), "type": "text", "text": text})
            answer.update(message_sent=True, message_id=sent["message_id"])
        except DriverError as exc:
            answer["message_error"] = exc.code
            actor.log.warning("reject_calls: the message to the caller was refused",
                              extra={"session_id": actor.session_id, "code": exc.code, "error": exc.message[:200]})
    actor.write(StateChange(event="call.rejected", data=answer))


def _bare(jid: str) -> str:
    """A user's chat JID: without the device part a call offer's sender carries."""
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server or 's.whatsapp.net'}"


def _presence(actor: "SessionActor", state: str) -> None:
    client = actor.client
    if client is None:
        return
    try:
        client.send_presence(state, None)
    except DriverError as exc:  # e.g. push_name_missing before WhatsApp synced the name
        actor.log.warning("always_online: the presence was refused",
                          extra={"session_id": actor.session_id, "code": exc.code, "error": exc.message[:200]})
