"""Disaster recovery, proven (docs/DISASTER_RECOVERY.md): a `pg_dump` of the database restored
into a fresh PostgreSQL server, a runner started against it, and every paired session is back,
authenticated from its stored device without a QR; the commands accepted before the backup run
once, in order, the event SQS never took is sent, and a command accepted after the backup point
(not in the restored database) is never run. Bounded: about 30 s here, 120 s at most."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pgserver
import pytest

from chalicelib.db import Database
from tests.support.runner_harness import EventsReader, pair_with_emulator, session_row, sole_runner, wait_for

PG_BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"


def _pg(tool: str, *args: str) -> None:
    done = subprocess.run([str(PG_BIN / tool), *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{tool} failed: {done.stderr[-2000:]}"


@pytest.fixture
def fresh_server(tmp_path):
    """A second, empty PostgreSQL server (its own data directory): the recovery target."""
    server = pgserver.get_server(tmp_path / "restored-pgdata", cleanup_mode="delete")
    yield server
    server.cleanup()


def _count(db: Database, sql: str, *params) -> int:
    with db.connection() as conn:
        return conn.execute(sql, params).fetchone()["n"]


def test_a_restored_dump_brings_every_paired_session_back_without_a_qr(
        stack, db, api, make_session, container, clean_runners, fresh_server, tmp_path):
    started = time.monotonic()
    env = stack.env
    sessions = [make_session(name=f"dr {i}") for i in range(2)]
    jids = {}
    with sole_runner(env, db, "dr-runner-a") as runner:
        for i, created in enumerate(sessions):
            pair_with_emulator(api, runner, created, f"55119999{i:05d}")
            jids[created["session_id"]] = session_row(db, created["session_id"])["jid"]
    # the runner is gone (SIGTERM). Work accepted meanwhile lives in the database (and on SQS):
    gap = {created["session_id"]: [container.commands.enqueue(created["session_id"], "send_message",
                                                              {"to": "5511777770000", "type": "text",
                                                               "text": f"gap {n}"}) for n in range(3)]
           for created in sessions}
    first = sessions[0]["session_id"]
    with db.connection() as conn, conn.transaction():  # an event SQS never took (an outage)
        pending = container.events.record(conn, first, "session.updated", {"changed": ["dr-check"]})
    before = {sid: _count(db, "SELECT count(*) AS n FROM event_outbox WHERE session_id = %s AND event = 'session.qr'",
                          sid) for sid in jids}
    assert all(before.values())  # each pairing showed its QR once

    dump = tmp_path / "zemeow.dump"
    _pg("pg_dump", "--format=custom", "--file", str(dump), "--dbname", env["DATABASE_URL"])
    # accepted after the backup point: the restored database never heard of it (the RPO). No
    # runner holds its slot, so only the (lost) row carried it: it is never run blind
    after_backup = container.commands.enqueue(first, "send_message", {"to": "5511777770000", "type": "text",
                                                                      "text": "after the backup"})
    assert after_backup["queue_url"] is None
    fresh_server.psql("CREATE DATABASE zemeow_restored;")
    restored_url = fresh_server.get_uri("zemeow_restored")
    _pg("pg_restore", "--no-owner", "--exit-on-error", "--dbname", restored_url, str(dump))

    restored = Database(restored_url)
    try:
        with sole_runner({**env, "DATABASE_URL": restored_url}, restored, "dr-runner-b") as recovered:
            for sid, jid in jids.items():
                row = wait_for(lambda: (r := session_row(restored, sid)) and r["status"] == "authenticated"
                               and r["runner_id"] == "dr-runner-b" and r, timeout=30,
                               message=f"{sid} authenticated on the restored database")
                assert row["jid"] == jid  # the same linked device
                assert recovered.emulator("GET", f"/emulator/sessions/{sid}")[1].get("state") != "waiting_scan"
            for sid, commands in gap.items():
                ids = [str(c["id"]) for c in commands]
                done = wait_for(lambda: (rows := _commands(restored, ids)) and
                                all(r["status"] == "succeeded" for r in rows) and rows, timeout=30,
                                message=f"{sid}'s commands from before the backup")
                assert all(r["attempts"] == 1 and r["runner_id"] == "dr-runner-b" for r in done)
                _, outbox = recovered.emulator("GET", f"/emulator/sessions/{sid}/outbox")
                assert [m["text"] for m in outbox["messages"]] == ["gap 0", "gap 1", "gap 2"]  # once, in order
            wait_for(lambda: _count(restored, "SELECT count(*) AS n FROM event_outbox WHERE id = %s "
                                              "AND sent_at IS NOT NULL", pending["id"]) == 1,
                     timeout=20, message="the outbox event SQS never took, sent from the restored database")
            assert pending["id"] in {e["id"] for e in EventsReader(container, first).poll()}
            assert _commands(restored, [str(after_backup["id"])]) == []
            _, outbox = recovered.emulator("GET", f"/emulator/sessions/{first}/outbox")
            assert "after the backup" not in [m["text"] for m in outbox["messages"]]
            for sid, count in before.items():  # no new QR: restored from the stored device
                assert _count(restored, "SELECT count(*) AS n FROM event_outbox WHERE session_id = %s "
                                        "AND event = 'session.qr'", sid) == count
    finally:
        restored.close()
    assert time.monotonic() - started < 120


def _commands(db: Database, ids: list[str]) -> list[dict]:
    with db.connection() as conn:
        rows = conn.execute("SELECT id::text AS id, status, attempts, runner_id FROM commands WHERE id::text = ANY(%s)",
                            (ids,)).fetchall()
    order = {command_id: n for n, command_id in enumerate(ids)}
    return sorted(rows, key=lambda r: order[r["id"]]) if len(rows) == len(ids) else []
