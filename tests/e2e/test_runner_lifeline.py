"""The runner lifeline (runner_container/lifeline.py): a killed runner's shards and running
commands move as soon as its database connection ends; a frozen runner's only after the
lease TTL.

The first tests drive the lease and claim SQL with lifelines held on real connections
(closing one is what PostgreSQL sees when a process dies); the last two use real runner
processes, killed with SIGKILL and frozen with SIGSTOP.
"""
from __future__ import annotations

import os
import signal

import pytest

from chalicelib.queues import shard_for
from chalicelib.repositories.commands import CommandRepository
from chalicelib.repositories.runners import RunnerRepository
from chalicelib.repositories.shards import ShardRepository
from runner_container.leases import LeaseManager
from runner_container.lifeline import Lifeline
from tests.support.runner_harness import shard_owners, start_runner, wait_for

TTL = 600.0  # leases that would hold for ten minutes: only a cut lifeline can move them in a test


@pytest.fixture
def two_runners(db, clean_runners):
    """Runner rows lease-a and lease-b, each with a lifeline; leases split 2/2 over 4 shards."""
    with db.connection() as conn:
        conn.execute("DELETE FROM shard_leases")
    repo = RunnerRepository(db)
    lifelines = {}
    for runner in ("lease-a", "lease-b"):
        repo.register(runner, hostname="h", pid=1, version="v", driver="emulator")
        lifelines[runner] = Lifeline(db, runner)
        assert lifelines[runner].ensure() is True
    a, b = LeaseManager(db, "lease-a", shards=4, ttl=TTL), LeaseManager(db, "lease-b", shards=4, ttl=TTL)
    assert a.tick() == ({0, 1}, set())
    assert b.tick() == ({2, 3}, set())
    yield a, b, lifelines
    for lifeline in lifelines.values():
        lifeline.close()
    with db.connection() as conn:
        conn.execute("DELETE FROM shard_leases")


def _running_command(db, make_session, runner_id: str, shards: int) -> tuple[str, str]:
    """A session whose shard lease-b holds, and a command of it left `running` by `runner_id`."""
    while True:
        created = make_session(name="lifeline")
        if shard_for(created["session_id"], shards) in (2, 3):
            break
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO commands (session_id, session_uid, type, payload, status, runner_id, attempts, started_at) "
            "SELECT session_id, id, 'ping', '{}', 'running', %s, 1, now() FROM sessions WHERE session_id = %s "
            "RETURNING id", (runner_id, created["session_id"])).fetchone()
    return created["session_id"], str(row["id"])


def test_a_cut_lifeline_frees_the_shards_and_running_commands_at_once(db, two_runners, make_session):
    a, b, lifelines = two_runners
    commands, shards = CommandRepository(db), ShardRepository(db, 4)
    session_id, command_id = _running_command(db, make_session, "lease-b", 4)
    shard = shard_for(session_id, 4)
    # lease-b lives: its leases, its running command and its place in the fair share stay
    for _ in range(3):
        assert a.tick() == (set(), set())
    assert commands.claim(command_id, "lease-a", TTL) is None
    assert [str(r["id"]) for r in shards.backlog({shard}, live_ttl=TTL, older_than=0)] == []
    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a", "lease-b"}
    with db.connection() as conn:
        expires = conn.execute("SELECT max(expires_at) AS t FROM shard_leases WHERE runner_id = 'lease-b'").fetchone()["t"]

    lifelines["lease-b"].close()  # what PostgreSQL sees when the process dies: the connection ends

    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a"}
    assert [str(r["id"]) for r in shards.backlog({shard}, live_ttl=TTL, older_than=0)] == [command_id]
    assert a.tick() == ({2, 3}, set())  # fair share 4 of 4, and lease-b's leases are takeable
    with db.connection() as conn:
        moved = conn.execute("SELECT min(acquired_at) AS t FROM shard_leases WHERE shard IN (2, 3)").fetchone()["t"]
    assert moved < expires  # taken long before the TTL would have let them go
    claimed = commands.claim(command_id, "lease-a", TTL, shards=4)
    assert claimed is not None and claimed["runner_id"] == "lease-a" and claimed["attempts"] == 2


def test_a_lifeline_lost_to_a_database_restart_makes_no_runner_dead(db, two_runners, make_session):
    """A PostgreSQL restart ends every connection, so every runner's lock at once (issue 16,
    bench/faults.py scenario 3). A lock taken before the server started is not trusted: the
    heartbeat decides until the runner takes its lifeline again, so no shard or running
    command moves because of the restart alone."""
    a, b, lifelines = two_runners
    commands, shards = CommandRepository(db), ShardRepository(db, 4)
    session_id, command_id = _running_command(db, make_session, "lease-b", 4)
    with db.connection() as conn:  # lease-b's lock was taken before the server (re)started
        conn.execute("UPDATE runners SET lifeline_taken_at = pg_postmaster_start_time() - interval '1 second' "
                     "WHERE id = 'lease-b'")
    key = lifelines["lease-b"].key
    lifelines["lease-b"].close()  # and the restart ended it
    _wait_unlocked(db, key)

    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a", "lease-b"}
    assert a.tick() == (set(), set())
    assert commands.claim(command_id, "lease-a", TTL) is None
    assert [str(r["id"]) for r in shards.backlog({shard_for(session_id, 4)}, live_ttl=TTL, older_than=0)] == []

    assert lifelines["lease-b"].ensure() is True  # its next heartbeat: a lock taken since the start
    key = lifelines["lease-b"].key
    lifelines["lease-b"].close()  # now a cut lifeline means the process is gone, as before
    _wait_unlocked(db, key)
    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a"}


def test_an_outage_longer_than_the_ttl_makes_no_runner_dead(db, two_runners, make_session):
    """The time PostgreSQL was down does not age a heartbeat (issue 16, bench/faults.py
    scenario 3 with a 3 s TTL and a 5 s outage: the first runner to beat again took the
    other's running send and made it a second time)."""
    a, b, lifelines = two_runners
    commands, runners = CommandRepository(db), RunnerRepository(db)
    session_id, command_id = _running_command(db, make_session, "lease-b", 4)
    with db.connection() as conn:  # the server went down 20 s before it (re)started
        conn.execute("UPDATE runners SET heartbeat_at = pg_postmaster_start_time() - interval '20 seconds' "
                     "WHERE id = 'lease-a'")
        conn.execute("UPDATE runners SET heartbeat_at = pg_postmaster_start_time() - interval '20.7 seconds' "
                     "WHERE id = 'lease-b'")
        conn.execute("INSERT INTO runners (id, hostname, pid, version, driver, heartbeat_at) VALUES "
                     "('gone-long', 'h', 1, 'v', 'emulator', pg_postmaster_start_time() - interval '1 hour')")
        up = float(conn.execute("SELECT extract(epoch FROM now() - pg_postmaster_start_time()) AS s").fetchone()["s"])
    ttl = up + 5  # the server started less than a TTL ago; every heartbeat is older than one

    assert runners.heartbeat("lease-a")  # lease-a beats first after the restart, then judges the others
    assert {r["id"] for r in runners.live(ttl)} == {"lease-a", "lease-b"}  # not the one silent before
    assert commands.claim(command_id, "lease-a", ttl) is None  # lease-b's running send stays its own
    assert runners.heartbeat("lease-a")  # beating on: when the server went down stays known
    assert {r["id"] for r in runners.live(ttl)} == {"lease-a", "lease-b"}
    # a TTL after the restart, the one that did not beat again is dead, and its command moves
    wait_for(lambda: float(_uptime(db)) > 2, timeout=5, message="server up for 2 s")
    short = float(_uptime(db)) - 1
    assert {r["id"] for r in runners.live(short)} == {"lease-a"}
    assert commands.claim(command_id, "lease-a", short) is not None


def _uptime(db) -> float:
    with db.connection() as conn:
        return conn.execute("SELECT extract(epoch FROM now() - pg_postmaster_start_time()) AS s").fetchone()["s"]


def _wait_unlocked(db, key: int) -> None:
    """The server lets a lock go once the closed connection's backend has ended (not at once)."""
    def gone() -> bool:
        with db.connection() as conn:
            return conn.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' "
                                "AND objid = %s::oid AND objsubid = 2", (key,)).fetchone()["n"] == 0
    wait_for(gone, timeout=10, message=f"lifeline lock {key} released")


def test_a_frozen_holder_keeps_its_shards_until_its_lease_expires(db, two_runners):
    """Frozen: connection and lock still there, heartbeat silent. The lock is not trusted
    past the TTL: once the lease has expired the shards move with the lock still held."""
    a, b, lifelines = two_runners
    with db.connection() as conn:
        conn.execute("UPDATE runners SET heartbeat_at = now() - interval '1 hour' WHERE id = 'lease-b'")
    assert a.tick() == (set(), set())  # lease-b is out of the fair share, but its leases run on
    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a"}
    with db.connection() as conn:
        conn.execute("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE runner_id = 'lease-b'")
    assert a.tick() == ({2, 3}, set())
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM runners r JOIN pg_locks l ON l.objid = r.lifeline_key::oid "
                            "AND l.locktype = 'advisory' AND l.granted WHERE r.id = 'lease-b'").fetchone()["n"] == 1


def test_only_the_lease_holder_of_a_commands_shard_may_claim_it(db, two_runners, make_session):
    """The fence a runner that lost a shard meets: it starts none of that shard's commands."""
    a, b, lifelines = two_runners
    while True:
        created = make_session(name="fence")
        if shard_for(created["session_id"], 4) in (2, 3):  # lease-b's
            break
    commands = CommandRepository(db)
    with db.connection() as conn:
        row, _ = commands.insert(conn, session_id=created["session_id"], type="ping", payload={},
                                 idempotency_key=None)
    assert commands.claim(str(row["id"]), "lease-a", TTL, shards=4) is None
    claimed = commands.claim(str(row["id"]), "lease-b", TTL, shards=4)
    assert claimed is not None and claimed["runner_id"] == "lease-b"


def test_a_lost_lifeline_is_taken_again_under_a_new_key(db, two_runners):
    a, b, lifelines = two_runners
    line = lifelines["lease-a"]
    old = line.key
    with db.connection() as conn:  # an administrator (or a network fault) ends the connection
        conn.execute("SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN runners r "
                     "ON l.objid = r.lifeline_key::oid WHERE l.locktype = 'advisory' AND r.id = 'lease-a'")
    assert line.ensure() is True
    assert line.key != old
    assert line.ensure() is False  # held: nothing to do
    with db.connection() as conn:
        assert conn.execute("SELECT lifeline_key FROM runners WHERE id = 'lease-a'").fetchone()["lifeline_key"] == line.key


# -- real runner processes ---------------------------------------------------------------
def _reset(db):
    with db.connection() as conn:
        conn.execute("DELETE FROM shard_leases")


def _lease(db, shard: int) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT runner_id, expires_at, acquired_at FROM shard_leases WHERE shard = %s",
                            (shard,)).fetchone()


def _heartbeat(db, runner_id: str):
    with db.connection() as conn:
        return conn.execute("SELECT heartbeat_at FROM runners WHERE id = %s", (runner_id,)).fetchone()["heartbeat_at"]


def _balanced(db, stack, ttl: str):
    a = start_runner(stack.env, "runner-a", RUNNER_LEASE_TTL=ttl)
    wait_for(lambda: set(shard_owners(db).values()) == {"runner-a"}, message="A owns the shards")
    b = start_runner(stack.env, "runner-b", RUNNER_LEASE_TTL=ttl)
    wait_for(lambda: sorted(map(str, shard_owners(db).values())) == ["runner-a", "runner-b"], message="balanced")
    return a, b, next(k for k, v in shard_owners(db).items() if v == "runner-b")


def test_sigkill_moves_the_shard_when_the_connection_ends_not_after_the_ttl(db, stack, clean_runners):
    _reset(db)
    a, b, b_shard = _balanced(db, stack, "600s")
    try:
        # A keeps ticking beside a live B and takes nothing of B's
        seen = _heartbeat(db, "runner-a")
        for _ in range(3):
            seen = wait_for(lambda s=seen: (h := _heartbeat(db, "runner-a")) > s and h, message="A ticks")
        assert _lease(db, b_shard)["runner_id"] == "runner-b"
        before = _lease(db, b_shard)
        assert (before["expires_at"] - seen).total_seconds() > 300

        b.kill()  # SIGKILL: no release, no goodbye; PostgreSQL ends its connections

        wait_for(lambda: _lease(db, b_shard)["runner_id"] == "runner-a", timeout=30, message="A takes B's shard")
        after = _lease(db, b_shard)
        assert after["acquired_at"] < before["expires_at"]  # the ten-minute lease did not have to run out
        assert [r["id"] for r in RunnerRepository(db).live(600)] == ["runner-a"]
    finally:
        a.stop()
        b.stop()


def test_sigstop_keeps_the_lease_until_the_ttl_then_it_moves(db, stack, clean_runners, container, make_session):
    """A frozen runner keeps its connection, so its lifeline lock stays: only the TTL moves
    its shard. Woken up, it has lost the shard and runs none of its commands."""
    _reset(db)
    a, b, b_shard = _balanced(db, stack, "4s")
    frozen = False
    try:
        os.kill(b.child.process.pid, signal.SIGSTOP)
        frozen = True
        last = _lease(db, b_shard)  # B renews no more: this is its last expiry
        wait_for(lambda: _lease(db, b_shard)["runner_id"] == "runner-a", timeout=30,
                 message="A takes the frozen B's shard after the TTL")
        moved = _lease(db, b_shard)
        assert moved["acquired_at"] >= last["expires_at"]  # not before B's lease ran out
        with db.connection() as conn:  # ...although B's lock was still held: the TTL decided
            held = conn.execute("SELECT count(*) AS n FROM runners r JOIN pg_locks l ON l.objid = r.lifeline_key::oid "
                                "AND l.locktype = 'advisory' AND l.granted WHERE r.id = 'runner-b'").fetchone()["n"]
        assert held == 1

        os.kill(b.child.process.pid, signal.SIGCONT)
        frozen = False
        wait_for(lambda: sorted(map(str, shard_owners(db).values())) == ["runner-a", "runner-b"],
                 message="rebalanced after B wakes")
        while True:
            created = make_session(name="after-wake")
            if shard_for(created["session_id"], 2) == b_shard:
                break
        ping = container.commands.enqueue(created["session_id"], "ping", {})
        done = container.commands.await_result(str(ping["id"]), 30)
        assert done["status"] == "succeeded" and done["attempts"] == 1
        assert done["runner_id"] == _lease(db, b_shard)["runner_id"]  # run by the shard's holder only
    finally:
        if frozen:
            os.kill(b.child.process.pid, signal.SIGCONT)
        a.stop()
        b.stop()
