"""Issue 11, finding 1, the runner's side, with a real runner process (emulator driver).

A session is deleted while its runner still holds the WhatsApp client (the delete's logout
could not reach the runner in time), and an admin at once creates a new session with the
same session_id. The old client then receives a message. Before the fix the old actor wrote
it, and its connected state, into the NEW session's row and webhook stream: the new tenant
received the old number's messages. Now the actor is bound to the deleted row's id: it
writes nothing, drops the old client and hands over to a fresh actor for the new row."""
from __future__ import annotations

import uuid

import pytest

from tests.support.runner_harness import pair_with_emulator, session_row, sole_runner, wait_for


@pytest.fixture
def runner(stack, db, clean_runners):
    # a long reconcile interval: the stale actor meets the inbound message before any sweep
    with sole_runner(stack.env, db, "emu-reuse", RUNNER_RECONCILE_INTERVAL="60s") as process:
        yield process


def _events_since_last_create(db, sid):
    with db.connection() as conn:
        rows = conn.execute("SELECT envelope FROM event_outbox WHERE session_id = %s ORDER BY created_at",
                            (sid,)).fetchall()
    events = [r["envelope"] for r in rows]
    last = max(i for i, e in enumerate(events) if e["event"] == "session.created")
    return events[last:]


def test_a_stale_client_of_a_deleted_session_never_feeds_its_successor(api, db, runner, make_session):
    sid = f"beta-{uuid.uuid4().hex[:8]}"
    old = make_session(session_id=sid)
    pair_with_emulator(api, runner, old, "5511999990011")
    with db.connection() as conn:  # the delete went through without the runner's logout
        conn.execute("DELETE FROM sessions WHERE session_id = %s", (sid,))
    new = make_session(session_id=sid)

    runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                    {"from": "5511988880000", "text": "for the old number only"})
    # the stale actor notices the replacement and drops the old client (or, broken, feeds the new row)
    wait_for(lambda: runner.emulator("GET", f"/emulator/sessions/{sid}")[0] == 404
             or len(_events_since_last_create(db, sid)) > 1, message="the old client dropped")
    events = _events_since_last_create(db, sid)
    assert [e["event"] for e in events] == ["session.created"], [(e["event"], e["data"]) for e in events]
    wait_for(lambda: runner.emulator("GET", f"/emulator/sessions/{sid}")[0] == 404, message="the old client dropped")
    row = session_row(db, sid)
    assert str(row["id"]) == new["id"]
    assert row["status"] == "disconnected" and row["jid"] is None
    with db.connection() as conn:
        runtime = conn.execute("SELECT messages_received FROM session_runtime WHERE session_id = %s",
                               (sid,)).fetchone()
        logged = conn.execute("SELECT count(*) AS n FROM messages m JOIN sessions s ON s.id = m.session_uid "
                              "WHERE s.session_id = %s", (sid,)).fetchone()
    assert runtime is None or runtime["messages_received"] == 0
    assert logged["n"] == 0
