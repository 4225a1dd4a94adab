"""The session actor on in-memory ports: commands through the table, the deferred sends,
the row-id binding and the hand-over when a session id is reused."""
from __future__ import annotations

from chalicelib.messaging.store_records import store_ops

from runner_container import machine as m
from runner_container.session import SessionActor

from tests.unit.fakes import MemoryStore, drain, make_ports, session_row


def _actor(**row_fields):
    row = session_row(**row_fields)
    ports = make_ports(MemoryStore(row))
    actor = ports.actors.actor_for(row["session_id"])
    return actor, ports, row


def test_a_connect_command_dials_and_the_login_runs_the_waiting_send():
    actor, ports, row = _actor()
    connect = ports.commands.add("connect", session_uid=row["id"])
    actor.post_command(connect, lambda: None, "connect")
    drain(actor)
    assert ports.commands.rows[connect]["status"] == "succeeded"
    assert ports.commands.rows[connect]["result"] == {"status": "connecting"}
    client = ports.driver.clients[-1]
    assert client.calls == [("connect",)] and actor.state.status == "connecting"

    send = ports.commands.add("send_message", {"to": "5511@s.whatsapp.net", "type": "text", "text": "hi"},
                              session_uid=row["id"])
    acked = []
    actor.post_command(send, lambda: acked.append(send), "send_message")
    drain(actor)
    assert ports.commands.rows[send]["status"] == "queued" and acked == []  # waits for the login
    client.sink("connected", {"jid": "5511@s.whatsapp.net"})
    drain(actor)
    assert ports.commands.rows[send]["status"] == "succeeded" and acked == [send]
    assert ports.store.events() == ["session.connecting", "session.connected", "message.sent"]
    sent = [change for _, change in ports.store.changes if change.event == "message.sent"][0]
    assert sent.counters == ("messages_sent",)
    stored = store_ops(sent.event, sent.data, "full", "5511@s.whatsapp.net")  # what the store writes of it
    assert stored[0][0] == "message" and stored[0][1]["from_me"] is True and stored[0][1]["text"] == "hi"
    assert sent.runtime == {"runner_id": "r-unit"} and sent.metadata == {"runner_id": "r-unit"}


def test_a_waiting_send_fails_when_the_login_does_not_come():
    actor, ports, row = _actor()
    actor.post_command(ports.commands.add("connect", session_uid=row["id"]), lambda: None)
    drain(actor)
    send = ports.commands.add("send_message", {"to": "x", "type": "text", "text": "hi"}, session_uid=row["id"])
    actor.post_command(send, lambda: None, "send_message")
    drain(actor)
    ports.clock.now += 30.0
    actor._timers()
    assert ports.commands.rows[send]["status"] == "failed"
    assert ports.commands.rows[send]["error"]["code"] == "not_connected"


def test_chat_commands_run_from_the_table():
    actor, ports, row = _actor()
    actor.step(m.StartConnect("requested", row, True, m.ProxyPlan()))
    ports.driver.clients[-1].sink("connected", {"jid": "me@s.whatsapp.net"})
    drain(actor)
    check = ports.commands.add("check_contacts", {"phones": ["5511"]}, session_uid=row["id"])
    unknown = ports.commands.add("teleport", session_uid=row["id"])
    unsupported = ports.commands.add("list_groups", session_uid=row["id"])
    for command_id in (check, unknown, unsupported):
        actor.post_command(command_id, lambda: None)
    drain(actor)
    assert ports.commands.rows[check]["result"] == {"contacts": [{"phone": "5511", "on_whatsapp": True}]}
    assert ports.commands.rows[unknown]["error"]["code"] == "unknown_command"
    assert ports.commands.rows[unsupported]["error"]["code"] == "not_supported"


def test_a_driver_failure_at_dial_is_retried_by_the_timer():
    actor, ports, row = _actor()
    from runner_container.drivers.base import DriverError

    ports.driver.fail_connect = DriverError("dial_failed", "no route")
    actor.step(m.Requested("connect"))
    assert actor.state.status == "error" and actor.state.retry_at == 1000.0 + 0.75
    ports.driver.fail_connect = None
    ports.clock.now = actor.state.retry_at
    actor._timers()
    assert actor.state.status == "connecting" and len(ports.driver.clients) == 2
    assert ports.metrics.reconnects.counts == {(): 1}


def test_late_callbacks_of_a_dropped_client_are_ignored():
    actor, ports, row = _actor()
    actor.step(m.Requested("connect"))
    old = ports.driver.clients[-1]
    actor.step(m.Requested("disconnect"))
    old.sink("connected", {"jid": "j"})
    drain(actor)
    assert actor.state.status == "disconnected" and not actor.state.logged_in


def test_a_reused_session_id_hands_the_commands_to_the_new_sessions_actor():
    actor, ports, old_row = _actor()
    actor.load()  # bound to the old row
    new_row = session_row(old_row["session_id"])  # deleted, then created again under the same id
    ports.store.rows[new_row["session_id"]] = new_row
    command = ports.commands.add("ping", session_uid=new_row["id"])
    actor.post("reconcile", None)  # `load` finds another row: SessionReplaced
    actor.post_command(command, lambda: None, "ping")
    drain(actor)
    successor = ports.actors.get(old_row["session_id"])
    assert successor is not actor and isinstance(successor, SessionActor)
    drain(successor)
    assert successor.uid == new_row["id"]
    assert ports.commands.rows[command]["status"] == "succeeded"
    assert ports.store.events() == ["session.connecting"]  # the new actor's restore, nothing of the old


def test_a_command_of_the_new_row_is_not_claimed_by_the_stale_actor():
    actor, ports, old_row = _actor()
    actor.load()
    new_row = session_row(old_row["session_id"])
    ports.store.rows[new_row["session_id"]] = new_row
    command = ports.commands.add("ping", session_uid=new_row["id"])
    acked = []
    actor.post_command(command, lambda: acked.append(1), "ping")
    drain(actor)  # the claim refuses the old row; `load` finds another row: SessionReplaced
    assert ports.commands.rows[command]["status"] == "queued" and acked == [1]  # left for the backlog scan
    assert ports.store.changes == [] and ports.actors.get(old_row["session_id"]) is not actor


def test_a_stale_actor_never_writes_into_the_row_that_reuses_its_id():
    actor, ports, old_row = _actor()
    actor.load()
    ports.store.rows[old_row["session_id"]] = session_row(old_row["session_id"])
    assert actor._handle_safely(("driver", actor.generation, "event",
                                 {"event": "message.received", "data": {"message_id": "1"}})) is False
    assert ports.store.changes == []


def test_a_deleted_session_fails_its_waiting_commands():
    actor, ports, row = _actor()
    actor.load()
    del ports.store.rows[row["session_id"]]
    waiting = ports.commands.add("ping", session_uid=row["id"])
    actor.post("reconcile", None)
    actor.post_command(waiting, lambda: None, "ping")
    drain(actor)
    assert ports.commands.rows[waiting]["error"] == {"code": "session_not_found",
                                                     "message": "the session was deleted"}


def test_a_command_that_overtakes_an_older_one_of_its_session_runs_after_it_and_each_runs_once():
    """The doorbell brought the second command before the first (whose NOTIFY was missed):
    the claim refuses it while the older one is queued, the older one runs first; the first
    command's own late copy (its SQS message) is only acknowledged."""
    actor, ports, row = _actor()
    first = ports.commands.add("ping", session_uid=row["id"])
    second = ports.commands.add("ping", session_uid=row["id"])
    finished: list[str] = []
    finish = ports.commands.finish
    ports.commands.finish = lambda r, **kw: (finished.append(r["id"]), finish(r, **kw))  # type: ignore[method-assign]
    actor.post_command(second, lambda: None, "ping")
    drain(actor)
    assert finished == [first, second]
    acked = []
    actor.post_command(first, lambda: acked.append(first), "ping")
    drain(actor)
    assert finished == [first, second] and acked == [first]
