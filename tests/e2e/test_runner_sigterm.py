"""SIGTERM with live sessions: the runner hands every connected session over (a
`session.disconnected` with reason `runner_handover`, desired state kept), releases its
slots and exits 0; the next runner restores each session from its stored device without
a QR and runs the command sent while no runner was up, once."""
from __future__ import annotations

import signal

from tests.conftest import session_headers
from tests.support.runner_harness import holders, outbox_events, pair_with_emulator, start_runner, wait_for

LONG_TTL = {"RUNNER_LEASE_TTL": "600s"}  # only a release can free the slots within the test


def test_sigterm_hands_live_sessions_over_and_the_next_runner_restores_them(api, db, stack, clean_runners,
                                                                             make_session, container):
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
    first = start_runner(stack.env, "sigterm-a", **LONG_TTL)
    second = None
    try:
        wait_for(lambda: holders(db) == {"sigterm-a"}, message="A holds every slot")
        sessions = [make_session(name=f"live {i}") for i in range(2)]
        for i, created in enumerate(sessions):
            pair_with_emulator(api, first, created, f"55119999900{i}1")
        jids = {s["session_id"]: api.get(f"/sessions/{s['session_id']}/status",
                                         headers=session_headers(s)).json_body["jid"] for s in sessions}

        first.child.process.send_signal(signal.SIGTERM)
        assert first.child.process.wait(timeout=60) == 0
        for created in sessions:
            sid = created["session_id"]
            handover = [e for e in outbox_events(db, sid) if e["event"] == "session.disconnected"]
            assert handover and handover[-1]["data"]["reason"] == "runner_handover", handover
            state = api.get(f"/sessions/{sid}/status", headers=session_headers(created)).json_body
            assert state["status"] == "disconnected" and state["desired_state"] == "connected"
        with db.connection() as conn:  # released, not left to expire
            assert conn.execute("SELECT count(*) AS n FROM slot_placements WHERE runner_id = 'sigterm-a'"
                                ).fetchone()["n"] == 0
        with db.connection() as conn:
            assert conn.execute("SELECT stopped_at FROM runners WHERE id = 'sigterm-a'").fetchone()["stopped_at"]

        waiting = container.commands.enqueue(sessions[0]["session_id"], "send_message",
                                             {"to": "5511777770000", "type": "text", "text": "while no runner"})
        second = start_runner(stack.env, "sigterm-b", **LONG_TTL)
        for created in sessions:
            sid, headers = created["session_id"], session_headers(created)
            state = wait_for(lambda: (s := api.get(f"/sessions/{sid}/status", headers=headers).json_body)
                             ["status"] == "authenticated" and s, timeout=60, message="restored on B")
            assert state["jid"] == jids[sid] and state["runner_id"] == "sigterm-b"
            assert len([e for e in outbox_events(db, sid) if e["event"] == "session.qr"]) == 1  # the first pairing only
        done = container.commands.await_result(str(waiting["id"]), 60)
        assert done["status"] == "succeeded" and done["attempts"] == 1 and done["runner_id"] == "sigterm-b", done
        _, outbox = second.emulator("GET", f"/emulator/sessions/{sessions[0]['session_id']}/outbox")
        assert [m["text"] for m in outbox["messages"]] == ["while no runner"]
    finally:
        first.stop()
        if second is not None:
            second.stop()
