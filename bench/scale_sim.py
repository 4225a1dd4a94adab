"""Placement at scale (issue 18): the real placement code against PostgreSQL, simulated runners.

    .venv/bin/python bench/scale_sim.py [--sessions 100000] [--runners 100] [--seed 1] [--step 500] [--quick]

What it runs: `PlacementRepository.tick` / `hand_over` / `release_all`
(chalicelib/repositories/placement.py, the rules of chalicelib/placement.py) and
`RunnerRepository.register` / `heartbeat` / `mark_stopped`, with one real lifeline per runner
(runner_container/lifeline.py: its own connection holding the advisory lock), on an embedded
PostgreSQL with N sessions inserted at once. A simulated runner's tick is the supervisor's:
heartbeat, lifeline check, placement tick, and the handover done at once (as if stopping the
slots' actors took no time). A round = every live runner ticks once, in an order shuffled each
round (seeded), one after the other: one round stands for RUNNER_HEARTBEAT_INTERVAL (1 s).
A kill closes the runner's lifeline connection (what a SIGKILL does: the lock is gone at
once; its heartbeat is still fresh); a graceful stop is the supervisor's: `release_all`,
`mark_stopped`, lifeline closed.

Timeline (--runners M): 1 runner holds everything; joins to M/10, M/2, M; 5% killed; down to
40% (graceful stops and 5% killed at once); 3% more killed. Per event: rounds until two rounds
in a row change nothing, sessions moved (each change of a slot's holder counts its sessions;
a session moved twice counts twice) against the least any placement must move, balance,
orphan slots, and the most any one runner took from the runners that left. At M runners:
statements per runner tick (counted on the client: every `execute`, plus BEGIN/COMMIT of
each transaction) in steady state and while rebalancing, and the `tick` call's time. The
lock-busy figure (M x mean tick / 1 s) says how close M runners come to taking turns on the
placement lock all the time (ticks that miss it skip balancing for that second).

What it does not show: SQS (per-runner queues, forwarding), WhatsApp or the emulator, the time
actors take to stop and start (a real handover waits for them), runners on separate hosts
(here one process, one connection pool, ticks one at a time: no lock contention is simulated;
the lock-busy figure estimates it).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.db import Database  # noqa: E402
from chalicelib.db.embedded import start_embedded  # noqa: E402
from chalicelib.repositories.placement import PlacementRepository  # noqa: E402
from chalicelib.repositories.runners import RunnerRepository, live_runners_sql  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402
from runner_container.lifeline import Lifeline  # noqa: E402

TTL = 15.0  # RUNNER_LEASE_TTL (a kill is seen by the lifeline, not the TTL)
HEARTBEAT = 1.0  # RUNNER_HEARTBEAT_INTERVAL: one round of ticks stands for it
MAX_ROUNDS = 300


class Load:
    """Statements the simulated runners send, counted by wrapping psycopg (in this process only)."""

    on = False
    statements = 0  # Cursor.execute calls (every conn.execute)
    blocks = 0  # conn.transaction() blocks: a BEGIN and a COMMIT each

    @classmethod
    def install(cls) -> None:
        execute, transaction = psycopg.Cursor.execute, psycopg.Connection.transaction

        def counted_execute(self, *args, **kwargs):
            cls.statements += cls.on
            return execute(self, *args, **kwargs)

        def counted_transaction(self, *args, **kwargs):
            cls.blocks += cls.on
            return transaction(self, *args, **kwargs)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Connection.transaction = counted_transaction  # type: ignore[method-assign]

    @classmethod
    def total(cls) -> int:
        return cls.statements + 2 * cls.blocks

    @classmethod
    @contextmanager
    def off(cls):
        was, cls.on = cls.on, False
        try:
            yield
        finally:
            cls.on = was


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else 0.0


class Fleet:
    """Simulated runners on the real repositories."""

    def __init__(self, db: Database, step: int, rng: random.Random):
        self.db, self.step, self.rng = db, step, rng
        self.runners, self.placement = RunnerRepository(db), PlacementRepository(db)
        self.alive: list[str] = []
        self.lifelines: dict[str, Lifeline] = {}
        self.tick_ms: list[float] = []  # PlacementRepository.tick
        self.runner_ms: list[float] = []  # the whole runner tick
        self.ticks = self.balanced = 0
        self.serial = 0

    # -- the runners' side (counted) ----------------------------------------------------
    def join(self, count: int) -> list[str]:
        joined = []
        for _ in range(count):
            self.serial += 1
            runner_id = f"sim-{self.serial:03d}-{uuid.uuid4().hex[:4]}"
            self.runners.register(runner_id, hostname="sim", pid=self.serial, version="sim", driver="sim")
            self.lifelines[runner_id] = Lifeline(self.db, runner_id)
            self.lifelines[runner_id].ensure()
            self.alive.append(runner_id)
            joined.append(runner_id)
        return joined

    def kill(self, runner_id: str) -> None:
        """SIGKILL: the lifeline connection ends; the row stays as it was (heartbeat fresh)."""
        self.lifelines.pop(runner_id).close()
        self.alive.remove(runner_id)

    def stop(self, runner_id: str) -> None:
        """The supervisor's graceful stop (its actors already stopped)."""
        self.placement.release_all(runner_id)
        self.runners.mark_stopped(runner_id)
        self.lifelines.pop(runner_id).close()
        self.alive.remove(runner_id)

    def tick(self, runner_id: str) -> None:
        started = time.perf_counter()
        self.runners.heartbeat(runner_id, max_sessions=None)
        self.lifelines[runner_id].ensure()
        before = time.perf_counter()
        view = self.placement.tick(runner_id, ttl=TTL, step=self.step, cap=None)
        self.tick_ms.append((time.perf_counter() - before) * 1000)
        if view.handing:
            self.placement.hand_over(runner_id, sorted(view.handing), TTL)
        self.runner_ms.append((time.perf_counter() - started) * 1000)
        self.ticks += 1
        self.balanced += view.balanced

    def round(self) -> None:
        order = list(self.alive)
        self.rng.shuffle(order)
        for runner_id in order:
            self.tick(runner_id)

    # -- the observer's side (not counted) ----------------------------------------------
    def state(self) -> dict[int, tuple[str | None, str | None, int]]:
        with Load.off(), self.db.connection() as conn:
            return {r["slot"]: (r["runner_id"], r["next_runner_id"], r["sessions"]) for r in conn.execute(
                "SELECT slot, runner_id, next_runner_id, sessions FROM slot_placements").fetchall()}

    def live_ids(self) -> set[str]:
        with Load.off(), self.db.connection() as conn:
            return {r["id"] for r in conn.execute(live_runners_sql("%s"), (TTL,)).fetchall()}

    def wait_dead(self, gone: set[str]) -> None:
        """Until PostgreSQL has ended the killed runners' backends (their locks gone)."""
        deadline = time.monotonic() + 10
        while gone & self.live_ids() and time.monotonic() < deadline:
            time.sleep(0.01)

    def loads(self, state: dict[int, tuple[str | None, str | None, int]]) -> dict[str, int]:
        loads = dict.fromkeys(self.alive, 0)
        for holder, _, sessions in state.values():
            if holder in loads:
                loads[holder] += sessions
        return loads


class Event:
    """One change to the fleet, then rounds until placement is quiet; what it cost."""

    def __init__(self, fleet: Fleet, name: str):
        self.fleet, self.name = fleet, name
        self.row: dict[str, Any] = {"event": name}

    def run(self, change: Callable[[], set[str]], minimum: Callable[[dict[str, int], set[str]], float]) -> dict[str, Any]:
        fleet = self.fleet
        prev = fleet.state()
        last = {slot: holder for slot, (holder, _, _) in prev.items()}
        loads_before = fleet.loads(prev)
        Load.on = True
        gone = change()
        Load.on = False
        fleet.wait_dead(gone)
        least = minimum(loads_before, gone)
        moved, taken, quiet, rounds, converged_at, wall, wall_converged = 0, Counter(), 0, 0, 0, 0.0, 0.0
        mark = (Load.total(), fleet.ticks, len(fleet.tick_ms))
        counted = mark
        while quiet < 2 and rounds < MAX_ROUNDS:
            started = time.perf_counter()
            Load.on = True
            fleet.round()
            Load.on = False
            wall += time.perf_counter() - started
            rounds += 1
            now = fleet.state()
            for slot, (holder, _, sessions) in now.items():
                if holder is not None and holder != last[slot]:
                    moved += sessions
                    if last[slot] in gone:
                        taken[holder] += sessions
                    last[slot] = holder
            if now != prev:
                quiet, converged_at, wall_converged = 0, rounds, wall
                counted = (Load.total(), fleet.ticks, len(fleet.tick_ms))
            else:
                quiet += 1
            prev = now
        loads = fleet.loads(prev)
        mean = sum(loads.values()) / len(loads)
        live = fleet.live_ids()
        self.row.update(
            runners=len(fleet.alive), rounds=converged_at if quiet >= 2 else None, sim_s=converged_at * HEARTBEAT,
            wall_s=wall_converged, moved=moved, least=int(round(least)),
            max_mean=max(loads.values()) / mean, min_mean=min(loads.values()) / mean,
            orphans=sum(1 for holder, _, _ in prev.values() if holder not in live),
            spread=max(taken.values()) if taken else 0, takers=len(taken),
            ideal_spread=sum(loads_before[g] for g in gone) / max(1, len(fleet.alive)) if gone else 0,
            statements=counted[0] - mark[0], runner_ticks=counted[1] - mark[1], tick_ms=fleet.tick_ms[mark[2]:counted[2]])
        return self.row


def joining(fleet: Fleet, count: int) -> tuple[Callable[[], set[str]], Callable[[dict[str, int], set[str]], float]]:
    def change() -> set[str]:
        fleet.join(count)
        return set()
    n = len(fleet.alive)
    return change, lambda loads, gone: sum(loads.values()) * count / (n + count) if n else TOTAL[0]


def leaving(fleet: Fleet, stop: int, kill: int) -> tuple[Callable[[], set[str]], Callable[[dict[str, int], set[str]], float]]:
    def change() -> set[str]:
        chosen = fleet.rng.sample(fleet.alive, stop + kill)
        for runner_id in chosen[:stop]:
            fleet.stop(runner_id)
        for runner_id in chosen[stop:]:
            fleet.kill(runner_id)
        return set(chosen)
    return change, lambda loads, gone: sum(loads[g] for g in gone)


TOTAL = [0]


def say(message: str) -> None:
    print(message, flush=True)


def show(row: dict[str, Any]) -> None:
    conv = f"{row['rounds']} rounds = {row['sim_s']:.0f} s simulated, {row['wall_s']:.1f} s wall" if row["rounds"] is not None \
        else f"NOT converged in {MAX_ROUNDS} rounds"
    say(f"  {row['event']}: {row['runners']} runners; {conv}; moved {row['moved']:,} (least {row['least']:,}, "
        f"{row['moved'] / max(1, row['least']):.2f}x); max/mean {row['max_mean']:.3f} min/mean {row['min_mean']:.3f}; "
        f"orphan slots {row['orphans']}"
        + (f"; from the leavers: {row['takers']} runners took, the most by one {row['spread']:,} "
           f"(an even share {row['ideal_spread']:,.0f})" if row["ideal_spread"] else ""))


def steady(fleet: Fleet, rounds: int) -> dict[str, float]:
    mark, ticks, first = Load.total(), fleet.ticks, len(fleet.tick_ms)
    started = time.perf_counter()
    Load.on = True
    for _ in range(rounds):
        fleet.round()
    Load.on = False
    wall = time.perf_counter() - started
    ms = fleet.tick_ms[first:]
    return {"per_tick": (Load.total() - mark) / (fleet.ticks - ticks), "mean": statistics.mean(ms), "p99": pct(ms, 99),
            "runner_mean": statistics.mean(fleet.runner_ms[-(fleet.ticks - ticks):]), "wall_rate": (Load.total() - mark) / wall}


def load_report(m: int, rebalance: dict[str, Any], calm: dict[str, float]) -> list[str]:
    busy = m * calm["mean"] / (HEARTBEAT * 1000)
    per = rebalance["statements"] / max(1, rebalance["runner_ticks"])
    rms = rebalance["tick_ms"]
    return [
        f"  steady state ({m} runners, after convergence): {calm['per_tick']:.1f} statements per runner tick "
        f"(heartbeat, lifeline check, BEGIN, lock, reads, COMMIT) = {calm['per_tick'] * m / HEARTBEAT:,.0f} statements/s "
        f"at {m} runners x 1 tick/s",
        f"  while rebalancing (the join to {m}, {rebalance['rounds']} rounds): {per:.1f} statements per runner tick = "
        f"{per * m / HEARTBEAT:,.0f} statements/s",
        f"  PlacementRepository.tick: steady mean {calm['mean']:.2f} ms p99 {calm['p99']:.2f} ms; rebalancing mean "
        f"{statistics.mean(rms):.2f} ms p99 {pct(rms, 99):.2f} ms; whole runner tick (with heartbeat, lifeline) "
        f"mean {calm['runner_mean']:.2f} ms",
        f"  placement lock busy: {m} x {calm['mean']:.2f} ms / 1 s = {busy:.0%} of each second in steady state, "
        f"{m * statistics.mean(rms) / 1000:.0%} while rebalancing (a tick that finds the lock taken skips balancing)",
        f"  (this machine ran {calm['wall_rate']:,.0f} statements/s single-threaded; 2 shared cores)",
    ]


def embedded_with_connections(data_dir: Path, needed: int) -> None:
    """100 lifelines + the pool need more than the default 100 connections: raise the limit of
    this bench's own embedded server (restarted once when it was lower)."""
    server = start_embedded(data_dir / "pgdata")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        current = int(conn.execute("SHOW max_connections").fetchone()[0])
        if current < needed:
            conn.execute(f"ALTER SYSTEM SET max_connections = {needed}")
    server.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runners", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step", type=int, default=500, help="PLACEMENT_STEP")
    parser.add_argument("--steady", type=int, default=20, help="rounds measured at full size after convergence")
    parser.add_argument("--quick", action="store_true", help="10,000 sessions, 1 -> 20 -> 8 runners")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.runners, args.steady = 10_000, 20, 10
    m, rng = args.runners, random.Random(args.seed)
    TOTAL[0] = args.sessions
    data_dir = ROOT / ".zemeow" / "scale_sim"
    env = {**os.environ, "DATA_DIR": str(data_dir), "QUEUE_PREFIX": f"zss{os.getpid()}", "LOG_LEVEL": "WARNING",
           "ADMIN_API_KEY": "bench-admin-key-0123456789abcdef", "ENCRYPTION_KEY": "bench-encryption-key"}
    if not env.get("DATABASE_URL"):
        embedded_with_connections(data_dir, m + 50)
    stack = LocalStackEnvironment(env, database_name=f"zemeow_scale_{os.getpid()}", fresh_database=True, log=lambda _: None)
    try:
        url = stack.start_database()
        stack.migrate()
        db = Database(url, max_size=4, application_name="scale-sim")
        started = time.perf_counter()
        with db.connect_direct(options="-c statement_timeout=0") as conn:  # a row trigger per session: slow
            conn.execute("INSERT INTO sessions (session_id, name, api_key_hash) SELECT 'sim-' || g, 'sim', md5('sim' || g) "
                         "FROM generate_series(1, %s) g", (args.sessions,))
            conn.execute("VACUUM ANALYZE slot_placements")
        say(f"# inserted {args.sessions:,} sessions in {time.perf_counter() - started:.1f} s (one INSERT; the slot "
            "count trigger runs per row)")
        say(f"# {args.sessions:,} sessions in 4,096 slots; PLACEMENT_STEP={args.step}; seed {args.seed}; "
            f"up to {m} runners, each with its own lifeline connection")
        Load.install()
        fleet = Fleet(db, args.step, rng)
        rows: list[dict[str, Any]] = []
        plan = [("start: 1 runner", joining, (1,)), (f"join 1 -> {max(2, m // 10)}", joining, (max(2, m // 10) - 1,))]
        plan += [(f"join {max(2, m // 10)} -> {m // 2}", joining, (m // 2 - max(2, m // 10),)),
                 (f"join {m // 2} -> {m}", joining, (m - m // 2,))]
        calm = None
        kill1, down = max(1, m // 20), int(m * 0.4)
        kill3 = max(1, m * 3 // 100)
        for name, kind, extra in plan:
            change, least = kind(fleet, *extra)
            rows.append(Event(fleet, name).run(change, least))
            show(rows[-1])
        calm = steady(fleet, args.steady)
        rebalance = rows[-1]
        for name, stop, kill in ((f"kill {kill1} of {m}", 0, kill1),
                                 (f"down {m - kill1} -> {down}: {m - kill1 - down - kill1} stopped + {kill1} killed",
                                  m - kill1 - down - kill1, kill1),
                                 (f"kill {kill3} of {down}", 0, kill3)):
            change, least = leaving(fleet, stop, kill)
            rows.append(Event(fleet, name).run(change, least))
            show(rows[-1])
        say("")
        table(rows, args)
        say("")
        say(f"Database load at {m} runners (client-counted statements; one round = 1 s of the real fleet):")
        for line in load_report(m, rebalance, calm):
            say(line)
        say(f"  ticks that took the placement lock: {fleet.balanced} of {fleet.ticks} (ticks run one at a time here)")
        for lifeline in fleet.lifelines.values():
            lifeline.close()
        db.close()
    finally:
        stack.stop(drop_database=True)
    return 0


def table(rows: list[dict[str, Any]], args) -> None:
    say(f"| event ({args.sessions:,} sessions, step {args.step}) | runners | rounds (= s) | wall s | moved | least | "
        "moved/least | max/mean | min/mean | orphan slots | most taken from leavers (even share) |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        spread = f"{r['spread']:,} by 1 of {r['takers']} ({r['ideal_spread']:,.0f})" if r["ideal_spread"] else "-"
        rounds = "—" if r["rounds"] is None else str(r["rounds"])
        say(f"| {r['event']} | {r['runners']} | {rounds} | {r['wall_s']:.1f} | {r['moved']:,} | {r['least']:,} | "
            f"{r['moved'] / max(1, r['least']):.2f} | {r['max_mean']:.3f} | {r['min_mean']:.3f} | {r['orphans']} | {spread} |")


if __name__ == "__main__":
    sys.exit(main())
