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
A refusal by WhatsApp is logged and never fails the event that caused it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

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
    """`auto_read`: the read receipt of a received message (in a group it names the author)."""
    if not actor.behaviour.auto_read or name != "message.received" or data.get("from_me"):
        return
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


def _presence(actor: "SessionActor", state: str) -> None:
    client = actor.client
    if client is None:
        return
    try:
        client.send_presence(state, None)
    except DriverError as exc:  # e.g. push_name_missing before WhatsApp synced the name
        actor.log.warning("always_online: the presence was refused",
                          extra={"session_id": actor.session_id, "code": exc.code, "error": exc.message[:200]})
