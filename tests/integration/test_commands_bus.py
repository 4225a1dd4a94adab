"""The command outbox: rows first, SQS second, a sweeper for what SQS did not take, bounded
awaits, idempotency keys, and the commands route."""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager

import pytest

from chalicelib.aws_clients import make_client
from chalicelib.commands import CommandOutbox
from chalicelib.errors import UpstreamTimeout
from chalicelib.placement import slot_of
from devstack.processes import free_port
from tests.conftest import session_headers
from tests.support.runner_harness import reset_placement, slot_owners, start_runner, wait_for


@pytest.fixture
def dead_sqs(settings):
    """An SQS client whose endpoint refuses connections: SQS is down."""
    from dataclasses import replace

    return make_client("sqs", replace(settings, aws_endpoint_url=f"http://127.0.0.1:{free_port()}"),
                       connect_timeout=1, read_timeout=1, max_attempts=1)


@pytest.fixture
def holder_queue(container, db, clean_runners):
    """A runner row holding every slot, whose command queue is a real FIFO queue the test
    reads: what the API sends to the holder of a session (routing follows placement)."""
    import uuid

    runner_id = f"test-holder-{uuid.uuid4().hex[:6]}"
    url = container.sqs.create_queue(
        QueueName=f"{container.settings.queue_prefix}-runner-t{uuid.uuid4().hex[:12]}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
    with db.connection() as conn:
        conn.execute("INSERT INTO runners (id, hostname, pid, version, driver, queue_url) "
                     "VALUES (%s, 'test', 0, 'test', 'none', %s)", (runner_id, url))
        conn.execute("UPDATE slot_placements SET runner_id = %s, next_runner_id = NULL", (runner_id,))
    yield url
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL WHERE runner_id = %s", (runner_id,))
    container.sqs.delete_queue(QueueUrl=url)


def _receive(container, session_id, url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = container.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                               AttributeNames=["MessageGroupId", "MessageDeduplicationId"])
        mine = [m for m in answer.get("Messages", []) if json.loads(m["Body"])["session_id"] == session_id]
        for m in answer.get("Messages", []):
            container.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if mine:
            return mine
    return []


def test_a_command_accepted_while_sqs_is_down_is_sent_by_the_sweeper(container, make_session, dead_sqs, db,
                                                                     holder_queue):
    created = make_session(name="sqs down")
    sid = created["session_id"]
    down = CommandOutbox(container.db, dead_sqs, lambda session_id: holder_queue)
    row = down.enqueue(sid, "ping")
    assert row["queue_url"] == holder_queue  # the INSERT named the holder's queue
    with db.connection() as conn:
        stored = conn.execute("SELECT status, enqueued_at FROM commands WHERE id = %s", (row["id"],)).fetchone()
    assert stored["status"] == "queued" and stored["enqueued_at"] is None  # accepted, not sent

    assert container.commands.sweep(older_than_seconds=0) >= 1
    [message] = _receive(container, sid, holder_queue)
    body = json.loads(message["Body"])
    assert body == {"command_id": str(row["id"]), "session_id": sid, "type": "ping"}
    assert message["Attributes"]["MessageGroupId"] == sid
    assert message["Attributes"]["MessageDeduplicationId"] == str(row["id"])
    with db.connection() as conn:
        assert conn.execute("SELECT enqueued_at FROM commands WHERE id = %s",
                            (row["id"],)).fetchone()["enqueued_at"] is not None
    # swept rows are not resent again while they are fresh
    assert container.commands.sweep(older_than_seconds=60) == 0


def test_the_api_accepts_a_connect_while_sqs_is_down_and_the_runner_still_runs_it(
        api, container, make_session, dead_sqs, stack, db, clean_runners):
    created = make_session(name="sqs down e2e")
    sid, headers = created["session_id"], session_headers(created)
    container.__dict__["commands"] = CommandOutbox(container.db, dead_sqs, lambda session_id: None)
    container.__dict__.pop("connections", None)
    response = api.post(f"/sessions/{sid}/connect", headers=headers)
    assert response.status_code == 202, response.body  # the row is the promise, not the queue
    command_id = response.json_body["command_id"]
    assert api.get(f"/sessions/{sid}/commands/{command_id}", headers=headers).json_body["status"] == "queued"

    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
    runner = start_runner(stack.env, "sweeper-runner")
    try:
        wait_for(lambda: api.get(f"/sessions/{sid}/commands/{command_id}", headers=headers)
                 .json_body["status"] == "succeeded", timeout=30, message="command executed")
        wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "connecting")
        command = api.get(f"/sessions/{sid}/commands/{command_id}", headers=headers).json_body
        assert command["attempts"] == 1 and command["result"] == {"status": "connecting"}
    finally:
        runner.stop()


def test_idempotency_key_returns_the_same_command_and_sends_once(container, make_session, holder_queue):
    sid = make_session(name="idem")["session_id"]
    first = container.commands.enqueue(sid, "ping", idempotency_key="k-1")
    second = container.commands.enqueue(sid, "ping", idempotency_key="k-1")
    other = container.commands.enqueue(sid, "ping", idempotency_key="k-2")
    assert first["id"] == second["id"] != other["id"]
    bodies = [json.loads(m["Body"])["command_id"] for m in _receive(container, sid, holder_queue)]
    assert bodies.count(str(first["id"])) == 1


def test_a_waited_command_no_runner_takes_is_sent_to_sqs_after_the_grace(container, make_session, holder_queue, db):
    """The holder's queue exists but nothing claims from the table: after DOORBELL_GRACE_SECONDS
    the waiting submit sends the message (once), and answers 504 only once it is sent."""
    sid = make_session(name="grace")["session_id"]
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as timed_out:
        container.commands.submit(sid, "ping", {}, wait=True, timeout=1.0)
    assert 1.0 <= time.monotonic() - started < 5
    command_id = timed_out.value.details["command_id"]
    [message] = _receive(container, sid, holder_queue)
    assert json.loads(message["Body"])["command_id"] == command_id
    with db.connection() as conn:
        row = conn.execute("SELECT status, enqueued_at FROM commands WHERE id = %s", (command_id,)).fetchone()
    assert row["status"] == "queued" and row["enqueued_at"] is not None


def test_a_waited_command_the_doorbell_brings_costs_no_sqs_message(container, make_session, stack, db,
                                                                    clean_runners, monkeypatch):
    """A runner claims the command from the insert's NOTIFY: the table carries it, so the
    waiting submit sends nothing to SQS (three requests saved per command)."""
    sid = make_session(name="doorbell only")["session_id"]
    sqs, sent = container.commands.sqs, []

    class RecordingSqs:
        def __getattr__(self, name):
            return getattr(sqs, name)

        def send_message(self, **kwargs):
            sent.append(kwargs)
            return sqs.send_message(**kwargs)

    monkeypatch.setattr(container.commands, "sqs", RecordingSqs())
    reset_placement(db)
    runner = start_runner(stack.env, "doorbell-runner")
    try:
        wait_for(lambda: slot_owners(db).get(slot_of(sid)) == "doorbell-runner", timeout=30,
                 message="the runner holds the session's slot")
        done = container.commands.submit(sid, "ping", {}, wait=True, timeout=20).body
        assert done["status"] == "succeeded", done
        container.commands.close()  # any send still on the pool is over
        assert sent == []
        with db.connection() as conn:
            row = conn.execute("SELECT enqueued_at, runner_id FROM commands WHERE id = %s",
                               (done["command_id"],)).fetchone()
        assert row["runner_id"] == "doorbell-runner" and row["enqueued_at"] is None  # never sent to SQS
    finally:
        runner.stop()


def test_await_result_wakes_on_notify_and_is_bounded(container, make_session, monkeypatch):
    sid = make_session(name="await")["session_id"]
    row = container.commands.enqueue(sid, "ping")
    started = time.monotonic()
    assert container.commands.await_result(str(row["id"]), 0.5)["status"] == "queued"
    assert time.monotonic() - started >= 0.5  # it waited its whole timeout, then answered with the row

    # every wait of await_result is seen: True when the NOTIFY set the event, False when the
    # wait ran out (the safety re-read)
    listener = container.commands.listener
    watch, waits, watching = listener.watch, [], threading.Event()

    class SpiedEvent:
        def __init__(self, event):
            self.event = event

        def wait(self, timeout=None):
            watching.set()
            woken = self.event.wait(timeout)
            waits.append(woken)
            return woken

        def clear(self):
            self.event.clear()

    @contextmanager
    def spied_watch(command_id):
        with watch(command_id) as event:
            yield SpiedEvent(event)

    monkeypatch.setattr(listener, "watch", spied_watch)

    def finish_when_waited_on():
        watching.wait(30)  # the runner's work ends while await_result is blocked
        container.commands.repo.finish(str(row["id"]), ok=True, result={"pong": True})

    threading.Thread(target=finish_when_waited_on, daemon=True).start()
    done = container.commands.await_result(str(row["id"]), 30)
    assert done["status"] == "succeeded" and done["result"] == {"pong": True}
    assert waits and waits[-1] is True, waits  # woken by NOTIFY, not by the 1 s safety re-read


def test_commands_route_shows_state_and_keeps_sessions_apart(api, container, make_session):
    one, two = make_session(name="one"), make_session(name="two")
    row = container.commands.enqueue(one["session_id"], "ping")
    answer = api.get(f"/sessions/{one['session_id']}/commands/{row['id']}", headers=session_headers(one))
    assert answer.status_code == 200
    assert answer.json_body["status"] == "queued" and answer.json_body["type"] == "ping"
    # another session's key: 403; the right key with the wrong session path: 404 for an unknown command
    assert api.get(f"/sessions/{one['session_id']}/commands/{row['id']}",
                   headers=session_headers(two)).status_code == 403
    missing = api.get(f"/sessions/{two['session_id']}/commands/{row['id']}", headers=session_headers(two))
    assert missing.status_code == 404 and missing.json_body["code"] == "command_not_found"
    bad = api.get(f"/sessions/{two['session_id']}/commands/not-a-uuid", headers=session_headers(two))
    assert bad.status_code == 404


def test_pairphone_without_a_runner_answers_504_in_bounded_time(api, container, make_session, db, clean_runners):
    created = make_session(name="no runner")
    container.connections.pair_phone_timeout = 1.0
    started = time.monotonic()
    response = api.post(f"/sessions/{created['session_id']}/pairphone", headers=session_headers(created),
                        body=json.dumps({"phone": "5511999990000"}))
    assert response.status_code == 504 and response.json_body["code"] == "runner_timeout"
    assert "did not produce a pairing code" in response.json_body["message"]
    assert time.monotonic() - started < 5


def test_connection_routes_refuse_what_makes_no_sense(api, make_session):
    created = make_session(name="states")
    sid, headers = created["session_id"], session_headers(created)
    qr = api.get(f"/sessions/{sid}/qr", headers=headers)
    assert qr.status_code == 409 and qr.json_body["code"] == "not_connecting"
    assert api.post(f"/sessions/{sid}/logout", headers=headers).json_body["code"] == "not_paired"
    assert api.post(f"/sessions/{sid}/disconnect", headers=headers).status_code == 200  # nothing to do
    assert api.get("/sessions/nope-nope/status", headers=headers).status_code == 403
    status = api.get(f"/sessions/{sid}/status", headers=headers).json_body
    assert status["status"] == "disconnected" and status["connected"] is False and status["runner_id"] is None
    bad_wait = api.get(f"/sessions/{sid}/qr?wait=999", headers=headers)
    assert bad_wait.status_code == 422
