"""Behaviour settings on the session actor (runner_container/behaviour.py), in memory:
a change read from the row reaches the live client without a reconnect, ignored chats
write nothing, received messages are read when `auto_read` is on."""
from __future__ import annotations

from runner_container import machine as m

from tests.unit.fakes import MemoryStore, drain, make_ports, session_row

PEER = {"jid": "5511912345671@s.whatsapp.net", "phone": "5511912345671"}
GROUP = {"jid": "120363041234567890@g.us", "phone": None}
STATUS = {"jid": "status@broadcast", "phone": None}


def _logged_in(**row_fields):
    row = session_row(**row_fields)
    ports = make_ports(MemoryStore(row))
    actor = ports.actors.actor_for(row["session_id"])
    actor.step(m.StartConnect("requested", actor.load(), True, m.ProxyPlan()))
    client = ports.driver.clients[-1]
    client.sink("connected", {"jid": "5511999990001@s.whatsapp.net"})
    drain(actor)
    return actor, ports, row, client


def _received(client, chat, *, message_id="3EB0AA", sender=PEER, from_me=False):
    client.sink("event", {"event": "message.received", "data": {
        "message_id": message_id, "chat": chat, "from": sender, "is_group": chat["jid"].endswith("@g.us"),
        "from_me": from_me, "type": "text", "text": "hi"}})


def _reconcile(actor, ports, **changes):
    ports.store.rows[actor.session_id].update(changes)
    actor.post("reconcile", None)
    drain(actor)


def test_always_online_is_sent_at_login_and_on_change_without_a_reconnect():
    actor, ports, row, client = _logged_in(always_online=True)
    assert ("presence", "available", None) in client.calls
    calls = len(client.calls)
    _reconcile(actor, ports, always_online=False)
    _reconcile(actor, ports, always_online=False)  # no change: nothing sent
    _reconcile(actor, ports, always_online=True)
    assert client.calls[calls:] == [("presence", "unavailable", None), ("presence", "available", None)]
    assert len(ports.driver.clients) == 1 and ("disconnect",) not in client.calls  # the same client, no reconnect
    assert actor.state.logged_in


def test_ignored_chats_write_nothing_and_others_are_written():
    actor, ports, row, client = _logged_in(ignore_groups=True, ignore_status_broadcast=True)
    before = len(ports.store.changes)
    _received(client, GROUP, message_id="G1")
    _received(client, STATUS, message_id="S1")
    client.sink("event", {"event": "chat.presence", "data": {"chat": GROUP, "sender": PEER, "state": "composing"}})
    client.sink("event", {"event": "group.update", "data": {"group": GROUP, "kind": "joined"}})
    _received(client, PEER, message_id="P1")
    drain(actor)
    written = [(c.event, (c.data or {}).get("message_id")) for _, c in ports.store.changes[before:]]
    assert written == [("group.update", None), ("message.received", "P1")]


def test_ignore_settings_off_keep_every_event():
    actor, ports, row, client = _logged_in()
    before = len(ports.store.changes)
    _received(client, GROUP, message_id="G1")
    _received(client, STATUS, message_id="S1")
    drain(actor)
    assert [c.data["message_id"] for _, c in ports.store.changes[before:]] == ["G1", "S1"]


def test_auto_read_marks_received_messages_read_naming_the_author_in_groups():
    actor, ports, row, client = _logged_in(auto_read=True)
    _received(client, PEER, message_id="P1")
    _received(client, GROUP, message_id="G1")
    _received(client, STATUS, message_id="S1")  # a status is not "read" by auto_read
    _received(client, PEER, message_id="M1", from_me=True)
    drain(actor)
    reads = [c for c in client.calls if c[0] == "read"]
    assert reads == [("read", PEER["jid"], ("P1",), None), ("read", GROUP["jid"], ("G1",), PEER["jid"])]
    _reconcile(actor, ports, auto_read=False)
    _received(client, PEER, message_id="P2")
    drain(actor)
    assert [c for c in client.calls if c[0] == "read"] == reads


def test_an_apply_settings_command_rereads_the_row_at_once():
    actor, ports, row, client = _logged_in()
    ports.store.rows[actor.session_id]["always_online"] = True
    command = ports.commands.add("apply_settings", session_uid=row["id"])
    actor.post_command(command, lambda: None, "apply_settings")
    drain(actor)
    assert ports.commands.rows[command]["status"] == "succeeded"
    assert ports.commands.rows[command]["result"]["applied"]["always_online"] is True
    assert client.calls[-1] == ("presence", "available", None)


def _offer(client, call_id="CALL1", caller="5511912345671:7@s.whatsapp.net"):
    client.sink("event", {"event": "call.offer", "data": {
        "call_id": call_id, "from": {"jid": caller, "phone": "5511912345671"}, "timestamp": "2026-11-30T00:00:00Z"}})


def test_a_call_is_rejected_the_caller_gets_the_text_and_call_rejected_is_written():
    actor, ports, row, client = _logged_in(reject_calls=True, reject_call_message="I cannot take calls")
    before = len(ports.store.changes)
    _offer(client)
    drain(actor)
    assert ("reject_call", "5511912345671:7@s.whatsapp.net", "CALL1") in client.calls
    assert ("send", "5511912345671@s.whatsapp.net") in client.calls  # to the user, not the calling device
    changes = [c for _, c in ports.store.changes[before:]]
    assert [c.event for c in changes] == ["call.offer", "message.sent", "call.rejected"]
    rejected = changes[-1].data
    assert rejected["call_id"] == "CALL1" and rejected["message_sent"] is True
    assert rejected["message_id"] == changes[1].data["message_id"]
    assert changes[1].data["text"] == "I cannot take calls"


def test_calls_are_left_alone_without_reject_calls_and_rejected_silently_without_a_text():
    actor, ports, row, client = _logged_in()
    _offer(client)
    drain(actor)
    assert not [c for c in client.calls if c[0] in ("reject_call", "send")]
    assert ports.store.events()[-1] == "call.offer"
    _reconcile(actor, ports, reject_calls=True)
    _offer(client, "CALL2")
    drain(actor)
    assert [c for c in client.calls if c[0] in ("reject_call", "send")] == [
        ("reject_call", "5511912345671:7@s.whatsapp.net", "CALL2")]
    last = [c for _, c in ports.store.changes][-1]
    assert last.event == "call.rejected" and last.data["message_sent"] is False
