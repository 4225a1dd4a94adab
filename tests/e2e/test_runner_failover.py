"""Placement across runner processes: sharing, graceful handover, kill -9 failover.

After kill -9 the survivor takes the dead runner's slots (its lifeline is gone), restores
the session from the stored device (no QR) and runs the commands sent during the gap
exactly once, in order. tests/e2e/test_scale_out.py does the same with four runners.
"""
from __future__ import annotations

import time

from chalicelib.placement import slot_of
from tests.conftest import session_headers
from tests.support.runner_harness import holders, reset_placement, slot_owners, start_runner, wait_for


def _held_by(db, runner_id: str) -> set[int]:
    with db.connection() as conn:
        return {r["slot"] for r in conn.execute("SELECT slot FROM slot_placements WHERE runner_id = %s",
                                                (runner_id,)).fetchall()}


def test_two_runners_share_the_slots_and_sigterm_hands_over_at_once(stack, db, clean_runners):
    """The handover can only come from B's release: the TTL is ten minutes, so a stop that
    left B's heartbeat to go stale would leave its slots with B for the whole wait."""
    reset_placement(db)
    long_ttl = {"RUNNER_LEASE_TTL": "600s"}
    a = start_runner(stack.env, "runner-a", **long_ttl)
    b = None
    try:
        wait_for(lambda: holders(db) == {"runner-a"}, message="A holds every slot")
        b = start_runner(stack.env, "runner-b", **long_ttl)
        wait_for(lambda: len(_held_by(db, "runner-b")) >= 2000, message="B takes about half")
        b_slots = _held_by(db, "runner-b")
        b.stop()  # SIGTERM: B releases its slots at once
        wait_for(lambda: holders(db) == {"runner-a"} and b_slots <= _held_by(db, "runner-a"), timeout=90,
                 interval=0.1, message="A takes B's slots (only a release can give them up before the TTL)")
        with db.connection() as conn:
            row = conn.execute("SELECT stopped_at FROM runners WHERE id = 'runner-b'").fetchone()
        assert row["stopped_at"] is not None
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_kill_9_failover_restores_the_session_and_runs_gap_commands_once_in_order(
        api, db, stack, clean_runners, make_session, container):
    reset_placement(db)
    runners = {"runner-a": start_runner(stack.env, "runner-a")}
    try:
        wait_for(lambda: holders(db) == {"runner-a"}, message="A holds every slot")
        runners["runner-b"] = start_runner(stack.env, "runner-b")
        wait_for(lambda: len(_held_by(db, "runner-b")) >= 2000, message="shared")

        created = make_session(name="failover")
        sid, headers = created["session_id"], session_headers(created)
        slot = slot_of(sid)
        owner_id = slot_owners(db)[slot]
        owner = runners[owner_id]
        survivor_id = next(r for r in runners if r != owner_id)
        survivor = runners[survivor_id]

        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
        wait_for(lambda: owner.emulator("GET", f"/emulator/sessions/{sid}")[1].get("state") == "waiting_scan")
        status, body = owner.emulator("POST", f"/emulator/sessions/{sid}/scan", {"phone": "5511999990009"})
        assert status == 200, body
        wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated")
        jid = api.get(f"/sessions/{sid}/status", headers=headers).json_body["jid"]

        owner.kill()  # kill -9: no release, no goodbye
        killed_at = time.monotonic()
        gap = [container.commands.enqueue(sid, "send_message", {"to": "5511777770000", "type": "text",
                                                                "text": f"gap {i}"}) for i in range(5)]

        # the survivor takes the slot (the lifeline ended with the process) and restores the session without a QR
        wait_for(lambda: slot_owners(db).get(slot) == survivor_id, timeout=30, message="slot taken over")
        state = wait_for(lambda: (s := api.get(f"/sessions/{sid}/status", headers=headers).json_body)
                         ["status"] == "authenticated" and s["runner_id"] == survivor_id and s, timeout=30,
                         message="session restored on the survivor")
        failover_seconds = time.monotonic() - killed_at
        assert state["jid"] == jid
        assert failover_seconds < 30

        done = [container.commands.await_result(str(c["id"]), 30) for c in gap]
        assert [d["status"] for d in done] == ["succeeded"] * 5, [d["error"] for d in done]
        assert all(d["attempts"] == 1 and d["runner_id"] == survivor_id for d in done)
        _, outbox = survivor.emulator("GET", f"/emulator/sessions/{sid}/outbox")
        assert [m["text"] for m in outbox["messages"]] == [f"gap {i}" for i in range(5)]  # once each, in order
        assert [d["result"]["message_id"] for d in done] == [m["message_id"] for m in outbox["messages"]]
        finished = [d["finished_at"] for d in done]
        assert finished == sorted(finished)
        with db.connection() as conn:
            qr_count = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_id = %s "
                                    "AND event = 'session.qr'", (sid,)).fetchone()["n"]
        assert qr_count == 1  # only the first pairing showed a QR
    finally:
        for process in runners.values():
            process.stop()
