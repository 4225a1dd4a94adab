"""Paced sends survive the death of their runner: kill -9 while claimed sends wait for
their slot; the runner that takes the shard over runs the rest from the command table,
in order and at the pace. Nothing is lost; the one send that may go twice is the one a
crash cuts between WhatsApp's answer and the row's finish (at-least-once, as for any
command)."""
from __future__ import annotations

import json

from tests.conftest import session_headers
from tests.support.runner_harness import holders, pair_with_emulator, start_runner, wait_for

FAST_FAILOVER = {"RUNNER_LEASE_TTL": "3s", "RUNNER_HEARTBEAT_INTERVAL": "1s"}
PEER = "5511912345674"


def _outbox(runner, sid):
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    return body["messages"] if status == 200 else []


def _commands(db, sid):
    with db.connection() as conn:
        return conn.execute("SELECT payload->>'text' AS text, status, runner_id FROM commands "
                            "WHERE session_id = %s AND type = 'send_message' ORDER BY created_at", (sid,)).fetchall()


def _run_and_replace(api, db, stack, make_session, stop_a):
    """A paced session on runner A, eight sends, A stopped by `stop_a` after its third message,
    runner B takes over; answers (texts, what A finished, what B sent, B's timestamps, what A
    left unfinished, the rows)."""
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
    a = start_runner(stack.env, "pacing-a", **FAST_FAILOVER)
    b = None
    try:
        wait_for(lambda: holders(db) == {"pacing-a"}, message="A holds every slot")
        created = make_session(name="paced failover")
        sid, headers = created["session_id"], session_headers(created)
        pair_with_emulator(api, a, created, "5511999990006")
        assert api.put(f"/sessions/{sid}", headers=headers, body=json.dumps({"send_rate": 30})).status_code == 200
        texts = [f"paced {i}" for i in range(8)]
        for text in texts:
            answer = api.post(f"/sessions/{sid}/messages", headers=headers,
                              body=json.dumps({"to": PEER, "type": "text", "text": text}))
            assert answer.status_code == 202, answer.body
        # stop A right after its third message: the next slot is 2 s away, the rest are claimed and waiting
        wait_for(lambda: len(_outbox(a, sid)) >= 3, timeout=30, message="A sent three")
        stop_a(a)
        # what A finished (a SIGTERM lets the actor send once more while the pollers wind down)
        sent_by_a = [c["text"] for c in _commands(db, sid) if c["status"] == "succeeded"]
        left = [c for c in _commands(db, sid) if c["status"] != "succeeded"]
        b = start_runner(stack.env, "pacing-b", **FAST_FAILOVER)
        wait_for(lambda: all(c["status"] == "succeeded" for c in _commands(db, sid)), timeout=90, interval=0.5,
                 message="every send done by B")
        outbox_b = _outbox(b, sid)
        return texts, sent_by_a, [m["text"] for m in outbox_b], [m["received_at"] for m in outbox_b], left, \
            _commands(db, sid)
    finally:
        a.kill()
        if b is not None:
            b.stop()


def _check(texts, sent_by_a, sent_by_b, stamps, rows):
    # in order, none lost: B sends exactly what A had not finished (after kill -9 that may include
    # one A handed to WhatsApp without finishing its row: at-least-once)
    # (A's third message may be the one a kill -9 cut before its row was finished)
    assert sent_by_a == texts[:len(sent_by_a)] and len(sent_by_a) >= 2
    assert sent_by_b == texts[len(sent_by_a):], (sent_by_a, sent_by_b)
    assert len(sent_by_b) >= 4 and {c["runner_id"] for c in rows[len(sent_by_a):]} == {"pacing-b"}
    assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 1.8  # at the pace on B too


def test_sends_waiting_for_their_slot_are_run_by_the_next_runner_after_kill_9(api, db, stack, clean_runners,
                                                                               make_session):
    texts, sent_by_a, sent_by_b, stamps, left, rows = _run_and_replace(api, db, stack, make_session,
                                                                       lambda a: a.kill())
    # the waiting sends stayed claimed by the dead runner: the backlog of the next owner takes them over
    assert left and any(c["status"] == "running" and c["runner_id"] == "pacing-a" for c in left)
    _check(texts, sent_by_a, sent_by_b, stamps, rows)


def test_a_runner_stopping_gives_its_waiting_sends_back_and_the_next_runs_them(api, db, stack, clean_runners,
                                                                               make_session):
    texts, sent_by_a, sent_by_b, stamps, left, rows = _run_and_replace(api, db, stack, make_session,
                                                                       lambda a: a.stop())
    # SIGTERM: the waiting sends went back to `queued` (nothing left claimed by the stopped runner)
    assert left and all(c["status"] == "queued" and c["runner_id"] is None for c in left)
    _check(texts, sent_by_a, sent_by_b, stamps, rows)
