"""Send pacing on the session actor, with a fake clock (runner_container/pacing.py):
sends over `send_rate` wait in order as actor timers (the actor keeps handling other
events meanwhile), a typing simulation precedes each text, a settings change applies to
the sends already waiting, and a claimed send's row carries it while it waits."""
from __future__ import annotations

from runner_container import machine as m
from runner_container.pacing import typing_seconds

from tests.unit.fakes import MemoryStore, drain, make_ports, session_row

PEER = "5511912345671@s.whatsapp.net"


def _logged_in(**row_fields):
    row = session_row(**row_fields)
    ports = make_ports(MemoryStore(row))
    actor = ports.actors.actor_for(row["session_id"])
    actor.step(m.StartConnect("requested", actor.load(), True, m.ProxyPlan()))
    client = ports.driver.clients[-1]
    client.sink("connected", {"jid": "5511999990001@s.whatsapp.net"})
    drain(actor)
    return actor, ports, row, client


def _send(actor, ports, row, text="hi", to=PEER):
    command = ports.commands.add("send_message", {"to": to, "type": "text", "text": text}, session_uid=row["id"])
    acked = []
    actor.post_command(command, lambda: acked.append(command), "send_message")
    drain(actor)
    return command, acked


def _tick(actor, ports, seconds):
    ports.clock.now += seconds
    actor._timers()
    drain(actor)


def _sent(client):
    return [c for c in client.calls if c[0] in ("send", "presence")]


def test_sends_over_the_rate_wait_their_slot_in_order_and_are_claimed_and_acked_at_once():
    actor, ports, row, client = _logged_in(send_rate=60)
    commands = []
    for index in range(3):
        command, acked = _send(actor, ports, row, text=f"m{index}")
        commands.append(command)
        assert acked == [command]  # the queue message is released at once: the row carries the send
    rows = ports.commands.rows
    assert [rows[c]["status"] for c in commands] == ["succeeded", "running", "running"]
    assert actor._next_timer() == ports.clock.now + 1.0
    _tick(actor, ports, 0.6)
    assert [rows[c]["status"] for c in commands] == ["succeeded", "running", "running"]
    _tick(actor, ports, 0.4)
    assert [rows[c]["status"] for c in commands] == ["succeeded", "succeeded", "running"]
    _tick(actor, ports, 1.0)
    assert [rows[c]["status"] for c in commands] == ["succeeded"] * 3
    assert [e for e in ports.store.events() if e == "message.sent"] == ["message.sent"] * 3
    assert actor._next_timer() is None


def test_other_events_are_handled_while_sends_wait():
    actor, ports, row, client = _logged_in(send_rate=6)
    _send(actor, ports, row)
    waiting, _ = _send(actor, ports, row)
    client.sink("event", {"event": "message.received", "data": {
        "message_id": "IN1", "chat": {"jid": PEER}, "from": {"jid": PEER}, "is_group": False, "from_me": False,
        "type": "text", "text": "hello"}})
    drain(actor)
    assert ports.store.events()[-1] == "message.received"
    assert ports.commands.rows[waiting]["status"] == "running"
    _tick(actor, ports, 10.0)
    assert ports.commands.rows[waiting]["status"] == "succeeded"


def test_a_chat_command_behind_waiting_sends_keeps_its_place_and_state_commands_do_not_wait():
    actor, ports, row, client = _logged_in(send_rate=60)
    _send(actor, ports, row)
    second, _ = _send(actor, ports, row)
    read = ports.commands.add("mark_read", {"chat": PEER, "message_ids": ["X1"]}, session_uid=row["id"])
    actor.post_command(read, lambda: None, "mark_read")
    ping = ports.commands.add("ping", session_uid=row["id"])
    actor.post_command(ping, lambda: None, "ping")
    drain(actor)
    rows = ports.commands.rows
    assert (rows[second]["status"], rows[read]["status"], rows[ping]["status"]) == ("running", "running", "succeeded")
    _tick(actor, ports, 1.0)
    assert (rows[second]["status"], rows[read]["status"]) == ("succeeded", "succeeded")
    assert [c[0] for c in client.calls if c[0] in ("send", "read")] == ["send", "send", "read"]


def test_typing_shows_composing_for_a_time_proportional_to_the_text_before_it():
    actor, ports, row, client = _logged_in(typing_simulation=True)
    text = "x" * 40
    command, _ = _send(actor, ports, row, text=text)
    assert typing_seconds(text) == 2.0 and typing_seconds("hi") == 0.5 and typing_seconds("y" * 1000) == 5.0
    assert _sent(client)[-1] == ("presence", "composing", PEER)
    assert ports.commands.rows[command]["status"] == "running"
    _tick(actor, ports, 1.9)
    assert ports.commands.rows[command]["status"] == "running"
    _tick(actor, ports, 0.1)
    assert ports.commands.rows[command]["status"] == "succeeded"
    assert _sent(client)[-2:] == [("presence", "composing", PEER), ("send", PEER)]


def test_typing_overlaps_the_wait_for_the_rate_slot():
    actor, ports, row, client = _logged_in(typing_simulation=True, send_rate=20)  # a slot every 3 s
    first, _ = _send(actor, ports, row, text="hi")
    _tick(actor, ports, 0.5)
    assert ports.commands.rows[first]["status"] == "succeeded"
    second, _ = _send(actor, ports, row, text="x" * 20)  # types for 1 s: starts 1 s before its slot
    _tick(actor, ports, 1.9)
    assert _sent(client)[-1] == ("send", PEER)  # not typing yet
    _tick(actor, ports, 0.1)
    assert _sent(client)[-1] == ("presence", "composing", PEER)
    _tick(actor, ports, 1.0)
    assert ports.commands.rows[second]["status"] == "succeeded"


def test_a_rate_change_applies_to_the_sends_already_waiting():
    actor, ports, row, client = _logged_in(send_rate=1)
    _send(actor, ports, row)
    waiting = [_send(actor, ports, row)[0] for _ in range(3)]
    ports.store.rows[row["session_id"]]["send_rate"] = None
    actor.post("reconcile", None)
    drain(actor)
    _tick(actor, ports, 0.0)
    assert [ports.commands.rows[c]["status"] for c in waiting] == ["succeeded"] * 3
    assert len(ports.driver.clients) == 1


def test_waiting_sends_wait_for_a_lost_login_then_go_at_their_pace():
    actor, ports, row, client = _logged_in(send_rate=60)
    _send(actor, ports, row)
    waiting, _ = _send(actor, ports, row)
    client.sink("disconnected", {"reason": "network"})
    drain(actor)
    _tick(actor, ports, 1.0)  # past the backoff: reconnecting on a new client
    assert len(ports.driver.clients) == 2 and actor.state.active and not actor.state.logged_in
    _tick(actor, ports, 1.0)
    assert ports.commands.rows[waiting]["status"] == "running"  # waits for the login, not failed
    ports.driver.clients[-1].sink("connected", {"jid": "5511999990001@s.whatsapp.net"})
    drain(actor)
    _tick(actor, ports, 0.5)
    assert ports.commands.rows[waiting]["status"] == "succeeded"
    assert ("send", PEER) in ports.driver.clients[-1].calls


def test_the_session_row_gone_fails_the_waiting_sends():
    actor, ports, row, client = _logged_in(send_rate=60)
    _send(actor, ports, row)
    waiting, _ = _send(actor, ports, row)
    actor.commands.drain("session_not_found", "the session was deleted")
    assert ports.commands.rows[waiting]["status"] == "failed"
    assert ports.commands.rows[waiting]["error"]["code"] == "session_not_found"
    assert actor._next_timer() is None


def test_an_actor_stopping_gives_its_waiting_sends_back_to_the_queue_for_the_next_owner():
    actor, ports, row, client = _logged_in(send_rate=60)
    first, _ = _send(actor, ports, row)
    waiting = [_send(actor, ports, row)[0] for _ in range(2)]
    assert [ports.commands.rows[c]["status"] for c in waiting] == ["running", "running"]
    actor._shutdown(graceful=True)  # the session moves to another runner
    assert ports.commands.rows[first]["status"] == "succeeded"
    assert [ports.commands.rows[c]["status"] for c in waiting] == ["queued", "queued"]
    assert actor._next_timer() is None and not actor.commands.pending_ids
