"""Paced sends survive the death of their runner: kill -9 while claimed sends wait for
their slot; the runner that takes the shard over runs the rest from the command table,
in order and at the pace. Nothing is lost; the one send that may go twice is the one a
crash cuts between WhatsApp's answer and the row's finish (at-least-once, as for any
command)."""
from __future__ import annotations

import json

from tests.conftest import session_headers
from tests.runner_harness import pair_with_emulator, shard_owners, start_runner, wait_for

FAST_FAILOVER = {"RUNNER_LEASE_TTL": "3s", "RUNNER_HEARTBEAT_INTERVAL": "1s"}
PEER = "5511912345674"


def _outbox(runner, sid):
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    return body["messages"] if status == 200 else []


def _commands(db, sid):
    with db.connection() as conn:
        return conn.execute("SELECT payload->>'text' AS text, status, runner_id FROM commands "
                            "WHERE session_id = %s AND type = 'send_message' ORDER BY created_at", (sid,)).fetchall()


def test_sends_waiting_for_their_slot_are_run_by_the_next_runner_after_kill_9(api, db, stack, clean_runners,
                                                                               make_session):
    with db.connection() as conn:
        conn.execute("DELETE FROM shard_leases")
    a = start_runner(stack.env, "pacing-a", **FAST_FAILOVER)
    b = None
    try:
        wait_for(lambda: set(shard_owners(db).values()) == {"pacing-a"}, message="A owns the shards")
        created = make_session(name="paced failover")
        sid, headers = created["session_id"], session_headers(created)
        pair_with_emulator(api, a, created, "5511999990006")
        assert api.put(f"/sessions/{sid}", headers=headers, body=json.dumps({"send_rate": 30})).status_code == 200
        wait_for(lambda: api.get(f"/sessions/{sid}", headers=headers).json_body["send_rate"] == 30)
        texts = [f"paced {i}" for i in range(8)]
        for text in texts:
            answer = api.post(f"/sessions/{sid}/messages", headers=headers,
                              body=json.dumps({"to": PEER, "type": "text", "text": text}))
            assert answer.status_code == 202, answer.body
        # kill A right after its third message: the next slot is 2 s away, the rest are claimed and waiting
        wait_for(lambda: len(_outbox(a, sid)) >= 3, timeout=30, message="A sent three")
        sent_by_a = [m["text"] for m in _outbox(a, sid)]
        a.kill()
        waiting = [c for c in _commands(db, sid) if c["status"] != "succeeded"]
        assert waiting and {c["status"] for c in waiting} <= {"running", "queued"}
        assert any(c["status"] == "running" and c["runner_id"] == "pacing-a" for c in waiting)

        b = start_runner(stack.env, "pacing-b", **FAST_FAILOVER)
        wait_for(lambda: all(c["status"] == "succeeded" for c in _commands(db, sid)), timeout=90, interval=0.5,
                 message="every send done by B")
        sent_by_b = [m["text"] for m in _outbox(b, sid)]
        # in order, none lost: B starts where A stopped (or with A's last, if the crash cut its finish)
        assert sent_by_b in (texts[len(sent_by_a):], texts[len(sent_by_a) - 1:]), (sent_by_a, sent_by_b)
        assert len(sent_by_b) >= 4 and {c["runner_id"] for c in _commands(db, sid)[len(sent_by_a):]} == {"pacing-b"}
        stamps = [m["received_at"] for m in _outbox(b, sid)]
        assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 1.9  # at the pace on B too
    finally:
        a.kill()
        if b is not None:
            b.stop()
