"""The command doorbell (runner_container/doorbell.py, migration 0081) and the in-order claim.

The runner in these tests has its sweeper, backlog scan and reconcile pushed ten minutes
out, and the commands are recorded without an SQS message: the only way they can reach
it is the NOTIFY of their insert.
"""
from __future__ import annotations

import json

import pytest

from chalicelib.repositories.commands import NEW_COMMAND_CHANNEL, CommandRepository
from tests.support.runner_harness import module_runner

QUIET = {"COMMAND_STALE_AFTER": "600s", "RUNNER_RECONCILE_INTERVAL": "600s"}


def _record(container, session_id: str, type: str = "ping") -> str:
    """The row only (as if SQS had refused the message): its insert still rings."""
    with container.db.connection() as conn:
        row, _ = container.commands.record(conn, session_id, type, {})
    return str(row["id"])


def test_the_insert_of_a_command_rings_with_its_id_session_and_type(container, make_session):
    created = make_session(name="doorbell")
    with container.db.connect_direct() as listen:
        CommandRepository.listen(listen, NEW_COMMAND_CHANNEL)
        command_id = _record(container, created["session_id"])
        rung = [json.loads(n.payload) for n in listen.notifies(timeout=5, stop_after=1)]
    assert rung == [{"command_id": command_id, "session_id": created["session_id"], "type": "ping"}]


def test_a_command_is_claimed_only_once_the_older_ones_of_its_session_are_not_queued(container, make_session):
    created = make_session(name="in-order")
    first, second = _record(container, created["session_id"]), _record(container, created["session_id"])
    repo = container.commands.repo
    assert repo.claim(second, "r-order", 15, in_order=True) is None
    assert [r["id"] for r in repo.older_queued(second)] == [first]
    assert repo.claim(first, "r-order", 15, in_order=True) is not None
    assert repo.claim(second, "r-order", 15, in_order=True) is not None


@pytest.fixture(scope="module")
def quiet_runner(stack):
    with module_runner(stack.env, "runner-doorbell", **QUIET) as runner:
        yield runner


def test_a_command_without_its_sqs_message_runs_by_the_doorbell(quiet_runner, container, make_session):
    created = make_session(name="rung")
    done = container.commands.await_result(_record(container, created["session_id"]), 30)
    assert done["status"] == "succeeded" and done["runner_id"] == "runner-doorbell" and done["attempts"] == 1


def test_a_command_whose_doorbell_was_missed_still_runs_before_the_next_one(quiet_runner, container, make_session):
    """The first command's NOTIFY never comes (the trigger is off for its insert); the
    second's does: the runner runs the first one first, each once."""
    created = make_session(name="missed")
    with container.db.connection() as conn, conn.transaction():
        conn.execute("ALTER TABLE commands DISABLE TRIGGER commands_notify_new")
        first, _ = container.commands.record(conn, created["session_id"], "ping", {})
        conn.execute("ALTER TABLE commands ENABLE TRIGGER commands_notify_new")
    second = _record(container, created["session_id"])
    done = [container.commands.await_result(c, 30) for c in (str(first["id"]), second)]
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    assert [d["attempts"] for d in done] == [1, 1]
    assert done[0]["finished_at"] <= done[1]["started_at"]
