"""The runner lifeline (runner_container/lifeline.py): a killed runner's slots and running
commands move as soon as its database connection ends; a frozen runner's only once its
heartbeat is older than RUNNER_LEASE_TTL.

The first tests drive the placement and claim SQL with lifelines held on real connections
(closing one is what PostgreSQL sees when a process dies); the last two use real runner
processes, killed with SIGKILL and frozen with SIGSTOP.
"""
from __future__ import annotations

import os
import signal

import pytest

from chalicelib.placement import slot_of
from chalicelib.repositories.commands import CommandRepository
from chalicelib.repositories.runners import RunnerRepository
from chalicelib.repositories.slots import SlotRepository
from runner_container.lifeline import Lifeline
from runner_container.placement import PlacementManager
from tests.support.runner_harness import holders, reset_placement, slot_owners, start_runner, wait_for

TTL = 600.0  # a heartbeat that would count for ten minutes: only a cut lifeline can move slots in a test


def _settle(managers: list[PlacementManager], rounds: int = 30) -> None:
    quiet = 0
    for _ in range(rounds):
        changed = False
        for manager in managers:
            change = manager.tick()
            if change.handing:
                manager.hand_over(sorted(change.handing))
            changed |= bool(change.gained or change.lost or change.handing)
        quiet = 0 if changed else quiet + 1
        if quiet >= 2:
            return
    raise AssertionError("placement did not settle")


@pytest.fixture
def two_runners(db, clean_runners):
    """Runner rows lease-a and lease-b, each with a lifeline, sharing the slots."""
    reset_placement(db)
    repo = RunnerRepository(db)
    lifelines = {}
    for runner in ("lease-a", "lease-b"):
        repo.register(runner, hostname="h", pid=1, version="v", driver="emulator")
        lifelines[runner] = Lifeline(db, runner)
        assert lifelines[runner].ensure() is True
    a, b = (PlacementManager(db, r, ttl=TTL, step=100_000) for r in ("lease-a", "lease-b"))
    _settle([a, b])
    assert a.owned and b.owned and not set(a.owned) & set(b.owned)
    yield a, b, lifelines
    for lifeline in lifelines.values():
        lifeline.close()
    reset_placement(db)


def _session_held_by(make_session, manager: PlacementManager, name: str) -> str:
    while True:
        created = make_session(name=name)
        if slot_of(created["session_id"]) in manager.owned:
            return created["session_id"]


def _running_command(db, session_id: str, runner_id: str) -> str:
    """A command of the session left `running` by `runner_id`."""
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO commands (session_id, session_uid, type, payload, status, runner_id, attempts, started_at) "
            "SELECT session_id, id, 'ping', '{}', 'running', %s, 1, now() FROM sessions WHERE session_id = %s "
            "RETURNING id", (runner_id, session_id)).fetchone()
    return str(row["id"])


def test_a_cut_lifeline_frees_the_slots_and_running_commands_at_once(db, two_runners, make_session):
    a, b, lifelines = two_runners
    commands, slots = CommandRepository(db), SlotRepository(db)
    session_id = _session_held_by(make_session, b, "lifeline")
    command_id = _running_command(db, session_id, "lease-b")
    slot = slot_of(session_id)
    # lease-b lives: its slots, its running command and its place in the share stay
    for _ in range(3):
        change = a.tick()
        assert not (change.gained or change.lost or change.handing)
    assert commands.claim(command_id, "lease-a", TTL) is None
    assert [str(r["id"]) for r in slots.backlog({slot}, live_ttl=TTL, older_than=0)] == []
    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a", "lease-b"}

    lifelines["lease-b"].close()  # what PostgreSQL sees when the process dies: the connection ends

    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a"}
    assert [str(r["id"]) for r in slots.backlog({slot}, live_ttl=TTL, older_than=0)] == [command_id]
    change = a.tick()  # every slot is a's share now, and lease-b's are orphans
    assert slot in change.gained and set(b.owned) <= set(a.owned)
    claimed = commands.claim(command_id, "lease-a", TTL, fenced=True)
    assert claimed is not None and claimed["runner_id"] == "lease-a" and claimed["attempts"] == 2


def test_a_lifeline_lost_to_a_database_restart_makes_no_runner_dead(db, two_runners, make_session):
    """A PostgreSQL restart ends every connection, so every runner's lock at once (issue 16,
    bench/faults.py scenario 3). A lock taken before the server started is not trusted: the
    heartbeat decides until the runner takes its lifeline again, so no slot or running
    command moves because of the restart alone."""
    a, b, lifelines = two_runners
    commands, slots = CommandRepository(db), SlotRepository(db)
    session_id = _session_held_by(make_session, b, "restart")
    command_id = _running_command(db, session_id, "lease-b")
    with db.connection() as conn:  # lease-b's lock was taken before the server (re)started
        conn.execute("UPDATE runners SET lifeline_taken_at = pg_postmaster_start_time() - interval '1 second' "
                     "WHERE id = 'lease-b'")
    key = lifelines["lease-b"].key
    lifelines["lease-b"].close()  # and the restart ended it
    _wait_unlocked(db, key)

    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a", "lease-b"}
    change = a.tick()  # placement reads the same rule (live_runners_sql): nothing of lease-b's moves
    assert not (change.gained or change.lost) and slot_of(session_id) in b.owned
    assert commands.claim(command_id, "lease-a", TTL) is None
    assert [str(r["id"]) for r in slots.backlog({slot_of(session_id)}, live_ttl=TTL, older_than=0)] == []

    assert lifelines["lease-b"].ensure() is True  # its next heartbeat: a lock taken since the start
    key = lifelines["lease-b"].key
    lifelines["lease-b"].close()  # now a cut lifeline means the process is gone, as before
    _wait_unlocked(db, key)
    assert {r["id"] for r in RunnerRepository(db).live(TTL)} == {"lease-a"}
    assert slot_of(session_id) in a.tick().gained  # and placement agrees


def test_an_outage_longer_than_the_ttl_makes_no_runner_dead(db, two_runners, make_session):
    """The time PostgreSQL was down does not age a heartbeat (issue 16, bench/faults.py
    scenario 3 with a 3 s TTL and a 5 s outage: the first runner to beat again took the
    other's running send and made it a second time)."""
    a, b, lifelines = two_runners
    commands, runners = CommandRepository(db), RunnerRepository(db)
    command_id = _running_command(db, _session_held_by(make_session, b, "outage"), "lease-b")
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


def test_a_frozen_holder_keeps_its_slots_until_its_heartbeat_is_older_than_the_ttl(db, two_runners):
    """Frozen: connection and lock still there, heartbeat silent. The lock is not trusted
    past the TTL: once the heartbeat is that old the slots move with the lock still held."""
    a, b, lifelines = two_runners
    with db.connection() as conn:
        conn.execute("UPDATE runners SET heartbeat_at = now() - interval '599 seconds' WHERE id = 'lease-b'")
    assert not a.tick().gained  # silent, but not for longer than the TTL
    with db.connection() as conn:
        conn.execute("UPDATE runners SET heartbeat_at = now() - interval '601 seconds' WHERE id = 'lease-b'")
    assert a.tick().gained == set(b.owned)
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM runners r JOIN pg_locks l ON l.objid = r.lifeline_key::oid "
                            "AND l.locktype = 'advisory' AND l.granted WHERE r.id = 'lease-b'").fetchone()["n"] == 1
    # b wakes: its tick tells it the slots are gone (it stops their sessions), and it claims nothing of them
    assert b.tick().lost and not b.owned.keys() & a.owned.keys()


def test_only_the_holder_of_a_commands_slot_may_claim_it(db, two_runners, make_session):
    """The fence a runner that lost a slot meets: it starts none of that slot's commands."""
    a, b, lifelines = two_runners
    session_id = _session_held_by(make_session, b, "fence")
    commands = CommandRepository(db)
    with db.connection() as conn:
        row, _ = commands.insert(conn, session_id=session_id, type="ping", payload={}, idempotency_key=None)
    assert commands.claim(str(row["id"]), "lease-a", TTL, fenced=True) is None
    claimed = commands.claim(str(row["id"]), "lease-b", TTL, fenced=True)
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
def _placement(db, slot: int) -> dict:
    with db.connection() as conn:
        return conn.execute("SELECT runner_id, moved_at FROM slot_placements WHERE slot = %s", (slot,)).fetchone()


def _heartbeat(db, runner_id: str):
    with db.connection() as conn:
        return conn.execute("SELECT heartbeat_at FROM runners WHERE id = %s", (runner_id,)).fetchone()["heartbeat_at"]


def _balanced(db, stack, ttl: str):
    a = start_runner(stack.env, "runner-a", RUNNER_LEASE_TTL=ttl)
    wait_for(lambda: holders(db) == {"runner-a"}, message="A holds every slot")
    b = start_runner(stack.env, "runner-b", RUNNER_LEASE_TTL=ttl)
    wait_for(lambda: holders(db) == {"runner-a", "runner-b"}, message="B holds slots too")
    return a, b, next(k for k, v in slot_owners(db).items() if v == "runner-b")


def test_sigkill_moves_the_slots_when_the_connection_ends_not_after_the_ttl(db, stack, clean_runners):
    reset_placement(db)
    a, b, b_slot = _balanced(db, stack, "600s")
    try:
        # A keeps ticking beside a live B and takes nothing of B's
        seen = _heartbeat(db, "runner-a")
        for _ in range(3):
            seen = wait_for(lambda s=seen: (h := _heartbeat(db, "runner-a")) > s and h, message="A ticks")
        assert _placement(db, b_slot)["runner_id"] == "runner-b"
        last_b = _heartbeat(db, "runner-b")

        b.kill()  # SIGKILL: no release, no goodbye; PostgreSQL ends its connections

        wait_for(lambda: _placement(db, b_slot)["runner_id"] == "runner-a", timeout=30, message="A takes B's slot")
        moved = _placement(db, b_slot)["moved_at"]
        assert (moved - last_b).total_seconds() < 60  # the ten-minute TTL did not have to run out
        assert [r["id"] for r in RunnerRepository(db).live(600)] == ["runner-a"]
        assert holders(db) == {"runner-a"}
    finally:
        a.stop()
        b.stop()


def test_sigstop_keeps_the_slots_until_the_ttl_then_they_move(db, stack, clean_runners, container, make_session):
    """A frozen runner keeps its connection, so its lifeline lock stays: only the TTL moves
    its slots. Woken up, it has lost them and runs none of their commands."""
    reset_placement(db)
    a, b, b_slot = _balanced(db, stack, "4s")
    frozen = False
    try:
        os.kill(b.child.process.pid, signal.SIGSTOP)
        frozen = True
        last = _heartbeat(db, "runner-b")
        wait_for(lambda: _placement(db, b_slot)["runner_id"] == "runner-a", timeout=30,
                 message="A takes the frozen B's slot after the TTL")
        assert (_placement(db, b_slot)["moved_at"] - last).total_seconds() >= 4  # not before the TTL
        with db.connection() as conn:  # ...although B's lock was still held: the TTL decided
            held = conn.execute("SELECT count(*) AS n FROM runners r JOIN pg_locks l ON l.objid = r.lifeline_key::oid "
                                "AND l.locktype = 'advisory' AND l.granted WHERE r.id = 'runner-b'").fetchone()["n"]
        assert held == 1

        os.kill(b.child.process.pid, signal.SIGCONT)
        frozen = False
        wait_for(lambda: holders(db) == {"runner-a", "runner-b"}, message="B takes a share again after it wakes")
        b_slots = {k for k, v in slot_owners(db).items() if v == "runner-b"}
        while True:
            created = make_session(name="after-wake")
            if slot_of(created["session_id"]) in b_slots:
                break
        ping = container.commands.enqueue(created["session_id"], "ping", {})
        done = container.commands.await_result(str(ping["id"]), 30)
        assert done["status"] == "succeeded" and done["attempts"] == 1
        assert done["runner_id"] == _placement(db, slot_of(created["session_id"]))["runner_id"]  # its holder only
    finally:
        if frozen:
            os.kill(b.child.process.pid, signal.SIGCONT)
        a.stop()
        b.stop()
