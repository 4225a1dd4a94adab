"""A command left `running` by a live runner that never ran it: its claim's UPDATE committed
while PostgreSQL died before answering (bench/faults.py scenario 3, `pg_ctl stop -m
immediate` during a burst). Its own backlog scan must bring it back; nothing else would:
the row names a live runner, so no other runner may claim it."""
from __future__ import annotations

import uuid

from chalicelib.placement import SLOTS
from chalicelib.repositories.slots import SlotRepository


def test_the_backlog_brings_back_a_command_its_own_runner_left_running(db, make_session, settings):
    created = make_session(name="orphan")
    me, other = f"r-me-{uuid.uuid4().hex[:6]}", f"r-other-{uuid.uuid4().hex[:6]}"
    with db.connection() as conn:
        for rid in (me, other):
            conn.execute("INSERT INTO runners (id, hostname, pid, version, driver) VALUES (%s, 'h', 1, 'v', 'emulator')",
                         (rid,))
        uid = conn.execute("SELECT id FROM sessions WHERE session_id = %s", (created["session_id"],)).fetchone()["id"]
        ids = [conn.execute(
            "INSERT INTO commands (session_id, session_uid, type, payload, status, runner_id, attempts, created_at, "
            "started_at) VALUES (%s, %s, 'send_message', '{}', 'running', %s, 1, now() - interval '1 minute', "
            "now() - make_interval(secs => %s)) RETURNING id::text",
            (created["session_id"], uid, runner, age)).fetchone()["id"]
            for runner, age in ((me, 30), (me, 0.0), (other, 30))]
    try:
        repo = SlotRepository(db)
        everything = set(range(SLOTS))
        found = {str(r["id"]) for r in repo.backlog(everything, live_ttl=15, older_than=5, runner_id=me)}
        orphan, just_claimed, others = ids
        assert orphan in found  # marked running by me 30 s ago and not run: posted again
        assert just_claimed not in found and others not in found  # mine just now; another live runner's
        assert orphan not in {str(r["id"]) for r in repo.backlog(everything, live_ttl=15, older_than=5)}  # before the fix
    finally:
        with db.connection() as conn:
            conn.execute("DELETE FROM commands WHERE id = ANY(%s::uuid[])", (ids,))
            conn.execute("DELETE FROM runners WHERE id = ANY(%s)", ([me, other],))
