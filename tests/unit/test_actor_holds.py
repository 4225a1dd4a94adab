"""The session actor through a database outage (bench/faults.py scenario 3, PostgreSQL stopped
hard): what records something already done outside the database (a received message, a
message handed to WhatsApp, a claimed command's outcome) is held and written once the
database answers, never dropped; and an actor that has ended hands what is posted to it
afterwards to the session's next actor instead of keeping it in an inbox nobody reads."""
from __future__ import annotations

import pytest

from chalicelib.errors import DependencyUnavailable
from runner_container.session import SessionActor

from tests.unit.fakes import FakeLedger, MemoryStore, drain, make_ports, session_row


def _down() -> DependencyUnavailable:
    return DependencyUnavailable("database error: consuming input failed: server closed the connection unexpectedly",
                                 code="database_unavailable")


class _DownStore(MemoryStore):
    """A store whose database is down for the next `failures` writes."""

    def __init__(self, row, failures: int = 0):
        super().__init__(row)
        self.failures = failures

    def apply(self, session_id, change, *, uid):
        if self.failures:
            self.failures -= 1
            raise _down()
        return super().apply(session_id, change, uid=uid)


class _DownLedger(FakeLedger):
    """Command rows whose database is down for the next failures of each kind. A failed claim
    has committed (its answer was lost with the connection): the row says running here."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = {"claim": 0, "finish": 0}
        self.claimed_here: set[str] = set()

    def claim(self, command_id, session_uid=None, *, in_order=False):
        if command_id in self.claimed_here and self.rows[command_id]["status"] == "running":
            return dict(self.rows[command_id])  # running on this runner: it may take it again
        row = super().claim(command_id, session_uid, in_order=in_order)
        if row is not None:
            self.claimed_here.add(command_id)
        if self.fail["claim"]:
            self.fail["claim"] -= 1
            raise _down()
        return row

    def finish(self, row, *, ok, result=None, error=None):
        if self.fail["finish"]:
            self.fail["finish"] -= 1
            raise _down()
        super().finish(row, ok=ok, result=result, error=error)


def _actor(store: MemoryStore) -> tuple[SessionActor, object]:
    ports = make_ports(store, commands=_DownLedger())
    actor = ports.actors.actor_for(next(iter(store.rows)))
    actor.holder.first_wait = actor.holder.max_wait = 0.001
    actor.load()
    return actor, ports


def _logged_in(store: MemoryStore) -> tuple[SessionActor, object]:
    actor, ports = _actor(store)
    connect = ports.commands.add("connect", session_uid=actor.uid)
    actor.post_command(connect, lambda: None, "connect")
    drain(actor)
    ports.driver.clients[-1].sink("connected", {"jid": "5511@s.whatsapp.net"})
    drain(actor)
    assert actor.state.logged_in
    return actor, ports


def _sends(ports) -> list[tuple]:
    return [call for call in ports.driver.clients[-1].calls if call[0] == "send"]


def test_a_received_message_is_held_while_the_database_is_down_not_dropped():
    store = _DownStore(session_row())
    actor, _ = _actor(store)
    store.failures = 3
    actor._received_durably({"event": "message.received", "data": {"message_id": "in-1", "text": "while down"}})
    assert store.failures == 0 and store.events() == ["message.received"]
    assert store.changes[0][1].data["text"] == "while down"


def test_a_send_whose_records_fail_is_finished_once_the_database_answers_and_sent_once():
    """The stall of scenario 3: the message went out, then the `message.sent` write and the
    `failed` mark both met the dead database; the row stayed `running` on a live runner for
    ever, and the backlog's later copy was only acknowledged (`recent`). Both writes are held."""
    store = _DownStore(session_row())
    actor, ports = _logged_in(store)
    send = ports.commands.add("send_message", {"to": "5511999@s.whatsapp.net", "type": "text", "text": "hi"},
                              session_uid=actor.uid)
    store.failures = 2  # message.sent, twice
    ports.commands.fail["finish"] = 2
    actor.post_command(send, lambda: None, "send_message")
    drain(actor)
    assert ports.commands.rows[send]["status"] == "succeeded"
    assert store.events().count("message.sent") == 1
    actor.post_command(send, lambda: None, "send_message")  # the backlog's copy
    drain(actor)
    assert len(_sends(ports)) == 1


def test_a_claim_whose_answer_was_lost_is_taken_again_and_run_once():
    """The claim's UPDATE committed as PostgreSQL died: the row says running here and nothing
    else takes it over while this runner lives. The actor claims it again once it answers."""
    store = _DownStore(session_row())
    actor, ports = _logged_in(store)
    send = ports.commands.add("send_message", {"to": "5511999@s.whatsapp.net", "type": "text", "text": "hi"},
                              session_uid=actor.uid)
    ports.commands.fail["claim"] = 2
    acked = []
    actor.post_command(send, lambda: acked.append(send), "send_message")
    drain(actor)
    assert ports.commands.rows[send]["status"] == "succeeded" and acked == [send]
    assert len(_sends(ports)) == 1


def test_a_command_the_database_stopped_before_it_acted_runs_once_it_answers():
    store = _DownStore(session_row())
    actor, ports = _logged_in(store)
    store.failures = 1  # the disconnect's state write
    command = ports.commands.add("disconnect", session_uid=actor.uid)
    actor.post_command(command, lambda: None, "disconnect")
    drain(actor)
    assert ports.commands.rows[command]["status"] == "succeeded"
    assert store.events()[-1] == "session.disconnected"


def test_a_stopping_actor_writes_a_held_message_when_the_database_answers_within_the_grace():
    store = _DownStore(session_row())
    actor, _ = _actor(store)
    actor.stopping.set()
    store.failures = 3
    actor._received_durably({"event": "message.received", "data": {"message_id": "in-2"}})
    assert store.events() == ["message.received"]


def test_a_stopping_actor_gives_up_a_held_message_once_its_grace_is_over():
    store = _DownStore(session_row())
    actor, _ = _actor(store)
    actor.holder.stop_grace = 0.01
    actor.stopping.set()
    store.failures = 10 ** 6
    with pytest.raises(DependencyUnavailable):
        actor._received_durably({"event": "message.received", "data": {"message_id": "in-3"}})
    assert store.events() == []


def test_what_is_posted_to_a_stopping_actor_goes_to_the_next_one():
    """Scenario 3: the shard came back to this runner while its actor was stopping (the leases
    moved twice after the outage). The supervisor's reconcile and the shard's commands went to
    the stopping actor, behind its stop: they were never handled, the session stayed
    unconnected here and the command's SQS message invisible. Now the next actor gets them."""
    store = MemoryStore(session_row())
    ports = make_ports(store)
    sid = next(iter(store.rows))
    old = ports.actors.actor_for(sid)
    old.load()
    old.post("stop", False)
    ping = ports.commands.add("ping", session_uid=old.uid)
    acked = []
    back = ports.actors.actor_for(sid)  # the shard is back: the registry still holds the stopping actor
    assert back is old
    back.post_command(ping, lambda: acked.append(ping), "ping")
    back.post("reconcile", None)
    back.post("driver", old.generation, "event", {"event": "message.received", "data": {"message_id": "late"}})
    back.post("driver", old.generation - 1, "event",  # a replaced client's message is a fact too
              {"event": "message.received", "data": {"message_id": "old-client"}})
    old._run()  # on this thread: the stop, then what waited behind it
    assert old.done.is_set()
    written = [change.data["message_id"] for _, change in store.changes if change.event == "message.received"]
    assert written == ["late", "old-client"]  # written by the actor whose client took them
    fresh = ports.actors.actor_for(sid)
    assert fresh is not old
    drain(fresh)
    assert ports.commands.rows[ping]["status"] == "succeeded" and acked == [ping]
    assert ports.driver.clients and ports.driver.clients[-1].calls == [("connect",)]  # the reconcile
    # and what comes after the actor ended goes to the next one too, never into the dead inbox
    later = ports.commands.add("ping", session_uid=old.uid)
    old.post_command(later, lambda: None, "ping")
    drain(fresh)
    assert ports.commands.rows[later]["status"] == "succeeded"


def test_a_received_message_is_written_before_the_sends_queued_ahead_of_it():
    """Until it is written a received message exists only in this process (WhatsApp has its
    acknowledgement already): behind a burst of sends it waited for each, and a runner killed
    meanwhile lost it (bench/faults.py scenario 1). It goes ahead of them now."""
    store = _DownStore(session_row())
    actor, ports = _logged_in(store)
    for n in range(3):
        send = ports.commands.add("send_message", {"to": "5511999@s.whatsapp.net", "type": "text", "text": f"{n}"},
                                  session_uid=actor.uid)
        actor.post_command(send, lambda: None, "send_message")
    ports.driver.clients[-1].sink("event", {"event": "message.received", "data": {"message_id": "in-4"}})
    drain(actor)
    assert store.events()[-4:] == ["message.received", "message.sent", "message.sent", "message.sent"]
