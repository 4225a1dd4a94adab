"""The handlers the command table names (`chalicelib/commands/catalog.py` `handler`).

Each is `handler(actor, spec, payload) -> result`, run on the session actor's thread; a
`DriverError(code, message)` fails the command with that code. The state commands step
the machine (`runner_container/machine.py`); the rest talk to WhatsApp through the
session's client.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from chalicelib.commands.catalog import CommandSpec
from chalicelib.messaging.store_records import person_jid
from chalicelib.repositories.session_store import StateChange
from runner_container import machine
from runner_container.drivers.base import DriverError, SessionClient

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.session import SessionActor

Result = dict[str, Any]


def ping(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    return {"pong": True, "runner_id": actor.ports.settings.runner_id}


def apply_settings(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    """Reread the session row: a behaviour change reaches the live client (runner_container/behaviour.py)."""
    actor.load()
    return {"applied": asdict(actor.behaviour)}


def connect(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    if actor.state.logged_in:
        return {"status": actor.state.status}
    actor.step(machine.Requested("connect"))
    return {"status": actor.state.status or "connecting"}


def disconnect(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    actor.step(machine.Requested("disconnect"))
    return {"status": "disconnected"}


def logout(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    row = actor.load()
    jid = actor.state.jid or row["jid"]
    warning = None
    if actor.client is not None and actor.state.logged_in:
        try:
            actor.client.logout()
        except DriverError as exc:
            warning = exc.message
    actor.step(machine.Requested("logout", jid=jid))
    return {"logged_out": True, "jid": jid, **({"warning": warning} if warning else {})}


def pair_phone(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    if actor.state.logged_in:
        raise DriverError("already_paired", "the session is already paired")
    actor.step(machine.Requested("pair_phone"))
    if actor.client is None:
        raise DriverError("not_connecting", "the session could not start connecting")
    code = actor.client.pair_phone(payload["phone"], bool(payload.get("show_push_notification", True)),
                                   timeout=15.0)
    return {"pairing_code": code}


def _logged_in(actor: "SessionActor") -> SessionClient:
    if not actor.state.logged_in or actor.client is None:
        raise DriverError("not_connected", "the session is not connected to WhatsApp")
    return actor.client


def send_message(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    client = _logged_in(actor)
    payload = with_mention_all(client, actor.state.jid, with_references(actor, payload))
    actor.commands.pacer.sent(actor.ports.clock.monotonic())  # the pace counts from the hand-over to WhatsApp
    sent = client.send(payload)
    # no blobs in events, nor a group's whole participant list
    shown = {k: v for k, v in payload.items() if k not in ("media_base64", "mention_all_jids")}
    if payload["type"] in ("reaction", "edit", "revoke"):  # the message it changes (message_id is the new one)
        shown["target_message_id"] = payload.get("message_id")
    # the message is out: what records it is held while the database is down, never dropped
    # (a failure here would run the command again: a second copy on WhatsApp)
    actor.write_held(StateChange(event="message.sent", data={**shown, "message_id": sent["message_id"],
                                                              "timestamp": sent.get("timestamp"),
                                                              **_sent_media(sent)},
                                 counters=("messages_sent",), activity=True))
    follow = own_change_event(payload, sent, actor.state.jid)
    if follow is not None:  # the receiver hears of an edit or a deletion the same way, whoever made it
        actor.write_held(StateChange(event=follow[0], data=follow[1], activity=True))
    return sent


def _rendered(jid: str | None) -> dict[str, Any] | None:
    if not jid:
        return None
    user, _, server = jid.partition("@")
    return {"jid": jid, "phone": user.split(":")[0] if server == "s.whatsapp.net" else None}


def own_change_event(payload: dict[str, Any], sent: dict[str, Any], own_jid: str | None
                     ) -> tuple[str, dict[str, Any]] | None:
    """`message.edited` / `message.revoked` for an edit or revoke this session just sent
    (what a receiver gets when the edit comes from the phone), else None."""
    kind = payload.get("type")
    if kind not in ("edit", "revoke"):
        return None
    from datetime import datetime, timezone  # noqa: PLC0415

    stamp = sent.get("timestamp")
    when = (datetime.fromtimestamp(stamp, timezone.utc).isoformat().replace("+00:00", "Z")
            if isinstance(stamp, (int, float)) and stamp else None)
    me = _rendered(person_jid({"jid": own_jid}) if own_jid else None)
    base = {"message_id": payload.get("message_id"), "chat": _rendered(payload["to"]),
            "is_group": payload["to"].endswith("@g.us"), "from_me": True}
    if kind == "edit":
        return "message.edited", {**base, "sender": me, "type": "text", "text": payload.get("text"),
                                  "edited_at": when, "edit_id": sent.get("message_id")}
    target = payload.get("target") or {}
    author = _rendered(target.get("sender")) if target.get("sender") else (me if target.get("from_me", True) else None)
    by_admin = bool(base["is_group"] and author is not None and me is not None and author["jid"] != me["jid"])
    return "message.revoked", {**base, "sender": author, "revoked_by": me, "by_admin": by_admin, "timestamp": when}


def _sent_media(sent: dict[str, Any]) -> dict[str, Any]:
    """What the driver says of the media it sent (size, sha256), for the store's media reference."""
    return {k: sent[k] for k in ("media_size", "media_sha256") if sent.get(k) is not None}


def mark_read(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    client = _logged_in(actor)
    for sender, message_ids in read_receipts(actor, payload):
        client.mark_read(payload["chat"], message_ids, sender)
    ids = payload["message_ids"]
    actor.write_held(StateChange(store=(("chat_read", {"chat_jid": payload["chat"], "message_ids": list(ids)}),)))
    return {"chat": payload["chat"], "message_ids": ids, "read": len(ids)}


def send_presence(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    _logged_in(actor).send_presence(payload["state"], payload.get("chat"))
    return {"state": payload["state"], **({"chat": payload["chat"]} if payload.get("chat") else {})}


def client_call(actor: "SessionActor", spec: CommandSpec, payload: dict[str, Any]) -> Result:
    """A `ClientCall` row: the client's method with the payload's fields, in order."""
    call = spec.call
    assert call is not None, f"{spec.type}: client_call needs a ClientCall"
    value = getattr(_logged_in(actor), call.method)(*(payload[name] for name in call.args))
    return {call.answer: value} if call.answer else value


def with_references(actor: "SessionActor", payload: dict[str, Any]) -> dict[str, Any]:
    """Add what WhatsApp needs about the messages a send refers to, from the message store:
    `quoted` (a reply: the quoted message's sender and preview) and `target` (a reaction,
    edit or revoke: whose message it is). Unknown ids (older than the log) are sent as
    given, with the API's `from_me` as the only hint."""
    out = dict(payload)
    lookups = {"quoted": payload.get("quoted_message_id")}
    if payload.get("type") in ("reaction", "edit", "revoke"):
        lookups["target"] = payload.get("message_id")
    for field, message_id in lookups.items():
        if not message_id:
            continue
        found = actor.ports.message_store.find(actor.uid, message_id)
        if found is not None:
            out[field] = {"message_id": message_id, "chat": found["chat_jid"], "from_me": found["from_me"],
                          "sender": found["sender_jid"] or (actor.state.jid if found["from_me"] else None),
                          "type": found["type"], "preview": found["preview"]}
    return out


def with_mention_all(client: SessionClient, own_jid: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """`mention_all`: every participant of the group but this account, asked of WhatsApp
    now (group_info), as `mention_all_jids` for the message builder."""
    if not payload.get("mention_all"):
        return payload
    me = person_jid({"jid": own_jid}) if own_jid else None
    group = client.group_info(payload["to"])
    everyone = [p["jid"] for p in group.get("participants") or [] if person_jid({"jid": p["jid"]}) != me]
    return {**payload, "mention_all_jids": everyone}


def read_receipts(actor: "SessionActor", payload: dict[str, Any]) -> list[tuple[str | None, list[str]]]:
    """(sender, ids) batches for a read: in a group, a receipt names the author of the
    messages, so ids without a given sender are grouped by their author from the message
    log; an id the log does not know fails the command, asking for `sender`."""
    ids, sender = payload["message_ids"], payload.get("sender")
    if sender or not payload["chat"].endswith("@g.us"):
        return [(sender, ids)]
    batches: dict[str, list[str]] = {}
    unknown = []
    known = actor.ports.message_store.find_many(actor.uid, ids)
    for message_id in ids:
        found = known.get(message_id)
        if found is None or not found["sender_jid"]:
            unknown.append(message_id)
        else:
            batches.setdefault(found["sender_jid"], []).append(message_id)
    if unknown:
        raise DriverError("sender_required", f"the author of {', '.join(unknown[:5])} is not in the message "
                          "log; give `sender` (a read receipt in a group names the message's author)")
    return list(batches.items())
