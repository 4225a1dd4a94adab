"""Shard leases across runner processes: balance, graceful handover, kill -9 failover.

After kill -9 the survivor steals the expired lease, restores the session from the
stored device (no QR) and runs the commands sent during the gap exactly once, in order.
"""
from __future__ import annotations

import time

from chalicelib.queues import shard_for
from tests.conftest import session_headers
from tests.support.runner_harness import shard_owners, start_runner, wait_for


def _reset_leases(db):
    with db.connection() as conn:
        conn.execute("DELETE FROM shard_leases")


def test_two_runners_split_the_shards_and_sigterm_hands_over_at_once(stack, db, clean_runners):
    """The handover can only come from B's release: the lease TTL is ten minutes, so a
    stop that left the lease to expire would leave the shard with B for the whole wait."""
    _reset_leases(db)
    long_ttl = {"RUNNER_LEASE_TTL": "600s"}
    a = start_runner(stack.env, "runner-a", **long_ttl)
    b = None
    try:
        wait_for(lambda: shard_owners(db) == {0: "runner-a", 1: "runner-a"}, message="A owns both shards")
        b = start_runner(stack.env, "runner-b", **long_ttl)
        wait_for(lambda: sorted(map(str, shard_owners(db).values())) == ["runner-a", "runner-b"],
                 message="one shard each")
        b_shard = next(k for k, v in shard_owners(db).items() if v == "runner-b")
        with db.connection() as conn:
            lease = conn.execute("SELECT expires_at - now() AS left FROM shard_leases WHERE shard = %s",
                                 (b_shard,)).fetchone()
        assert lease["left"].total_seconds() > 300  # B's lease would hold for minutes on its own
        b.stop()  # SIGTERM: B releases its lease at once
        wait_for(lambda: shard_owners(db)[b_shard] == "runner-a", timeout=90, interval=0.1,
                 message="A takes B's shard (only a release can give it up before the ten-minute TTL)")
        with db.connection() as conn:
            row = conn.execute("SELECT stopped_at FROM runners WHERE id = 'runner-b'").fetchone()
        assert row["stopped_at"] is not None
    finally:
        a.stop()
        if b is not None:
            b.stop()


def test_kill_9_failover_restores_the_session_and_runs_gap_commands_once_in_order(
        api, db, stack, clean_runners, make_session, container):
    _reset_leases(db)
    runners = {"runner-a": start_runner(stack.env, "runner-a")}
    try:
        wait_for(lambda: set(shard_owners(db).values()) == {"runner-a"}, message="A owns the shards")
        runners["runner-b"] = start_runner(stack.env, "runner-b")
        wait_for(lambda: sorted(map(str, shard_owners(db).values())) == ["runner-a", "runner-b"], message="balanced")

        created = make_session(name="failover")
        sid, headers = created["session_id"], session_headers(created)
        shard = shard_for(sid, stack.settings.command_shards)
        owner_id = shard_owners(db)[shard]
        owner = runners[owner_id]
        survivor_id = next(r for r in runners if r != owner_id)
        survivor = runners[survivor_id]

        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
        wait_for(lambda: owner.emulator("GET", f"/emulator/sessions/{sid}")[1].get("state") == "waiting_scan")
        status, body = owner.emulator("POST", f"/emulator/sessions/{sid}/scan", {"phone": "5511999990009"})
        assert status == 200, body
        wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated")
        jid = api.get(f"/sessions/{sid}/status", headers=headers).json_body["jid"]

        owner.kill()  # kill -9: no lease release, no goodbye
        killed_at = time.monotonic()
        gap = [container.commands.enqueue(sid, "send_message", {"to": "5511777770000", "type": "text",
                                                                "text": f"gap {i}"}) for i in range(5)]

        # the survivor steals the shard after the TTL and restores the session without a QR
        wait_for(lambda: shard_owners(db).get(shard) == survivor_id, timeout=30, message="lease stolen")
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
