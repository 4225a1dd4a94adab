"""Placement at scale (issue 18): the real placement code against PostgreSQL, simulated runners.

    .venv/bin/python bench/scale_sim.py [--sessions 100000] [--runners 100] [--seed 1] [--step 500]
                                        [--realtime 10] [--quick]

What it runs: `PlacementRepository.tick` / `hand_over` / `release_all`
(chalicelib/repositories/placement.py, the rules of chalicelib/placement.py) and
`RunnerRepository.register` / `heartbeat` / `mark_stopped`, with a real lifeline per runner
(runner_container/lifeline.py: a connection of its own holding the advisory lock), on an
embedded PostgreSQL holding N sessions (bench/scale_fleet.py). A simulated runner's tick is
the supervisor's: heartbeat, lifeline check, placement tick, and the handover done at once (as
if its actors stopped in no time). A kill closes the runner's lifeline connection, which is
what SIGKILL does (the lock is gone at once, the heartbeat still fresh); a graceful stop is
the supervisor's: `release_all`, `mark_stopped`, lifeline closed.

Most events run in rounds: every live runner ticks once, one after the other, in an order
shuffled each round (seeded); a round stands for RUNNER_HEARTBEAT_INTERVAL (1 s). No tick
then meets another on the placement lock or on a slot row. One event runs in real time
instead: every runner in its own thread, one tick a second at its own phase, as a fleet
does; there a tick that finds the lock taken asks for nothing that second, two claims may
meet on a slot, and the times are real seconds.

Timeline (--runners M): 1 runner holds everything; joins to M/10, M/2, M; 5% killed (in real
time), 5% killed; down to 40% (graceful stops and 5% killed at once); 3% more killed. Per
event: rounds until two in a row change nothing; sessions moved (each change of a slot's
holder counts its sessions, seen at the end of each round, or every 0.2 s in real time)
against the least any placement must move; balance; orphan slots; the most one runner took
from the runners that left. At M runners: statements per runner tick (counted on the client:
each `execute`, BEGIN and COMMIT) by kind, in steady state and while rebalancing; the `tick`
call's time against a `SELECT 1` round trip measured in the same run; how many ticks took
the placement lock (only those with something to ask for or release do).

What it does not show: SQS (per-runner queues, forwarding), WhatsApp or the emulator, the time
actors take to stop and start (a real handover waits for them), runners on separate hosts
(here one process and one pool: the real-time event has 100 threads on this machine's cores).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale_fleet import HEARTBEAT, Fleet, Load, Row, pct  # noqa: E402
from chalicelib.db import Database  # noqa: E402
from chalicelib.db.embedded import start_embedded  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402

MAX_ROUNDS = 300


def say(message: str = "") -> None:
    print(message, flush=True)


def run_event(fleet: Fleet, name: str, change: Callable[[], set[str]], least: Callable[[dict[str, int], set[str]], float],
              real_time: bool = False) -> Row:
    """Apply `change`, then let the fleet tick until placement rests; what it cost."""
    prev = fleet.state()
    last = {slot: holder for slot, (holder, _, _) in prev.items()}
    loads_before = fleet.loads(prev)
    gone = change()
    fleet.wait_dead(gone)
    down = any(n and h not in set(fleet.alive) for h, _, n in fleet.state().values())  # sessions with no live holder
    Load.on = True
    moved, taken, rounds, changed_at, changed_t, claimed = 0, Counter(), 0, 0, 0.0, None
    started, mark = time.perf_counter(), (Load.mark(), fleet.ticks, len(fleet.tick_ms), fleet.balanced)
    counted = mark
    while rounds < MAX_ROUNDS * (5 if real_time else 1):
        if real_time:
            time.sleep(0.2)
        else:
            fleet.round()
        rounds += 1
        now = fleet.state()
        for slot, (holder, _, sessions) in now.items():
            if holder is not None and holder != last[slot]:
                moved += sessions
                taken[holder] += sessions if last[slot] in gone else 0
                last[slot] = holder
        alive = set(fleet.alive)
        if down and claimed is None and not any(n and h not in alive for h, _, n in now.values()):
            claimed = time.perf_counter() - started if real_time else rounds  # every session has a live holder
        if now != prev:
            changed_at, changed_t = rounds, time.perf_counter() - started
            counted = (Load.mark(), fleet.ticks, len(fleet.tick_ms), fleet.balanced)
        prev = now
        if (time.perf_counter() - started - changed_t >= 3 * HEARTBEAT) if real_time else rounds - changed_at >= 2:
            break
    Load.on = False
    loads, live = fleet.loads(prev), fleet.live_ids()
    mean = sum(loads.values()) / len(loads)
    statements = counted[0][0] - mark[0][0]  # up to the last round that changed something
    taken = Counter({k: v for k, v in taken.items() if v})
    return {"event": name, "runners": len(fleet.alive), "real_time": real_time,
            "rounds": changed_at if real_time or rounds - changed_at >= 2 else None, "wall_s": changed_t,
            "moved": moved, "least": int(round(least(loads_before, gone))),
            "max_mean": max(loads.values()) / mean, "min_mean": min(loads.values()) / mean,
            "orphans": sum(1 for holder, _, _ in prev.values() if holder not in live),
            "spread": max(taken.values(), default=0), "takers": len(taken),
            "even_share": sum(loads_before[g] for g in gone) / len(fleet.alive) if gone else 0,
            "statements": statements, "runner_ticks": counted[1] - mark[1], "tick_ms": fleet.tick_ms[mark[2]:counted[2]],
            "locked": counted[3] - mark[3], "claimed": claimed}


def join(fleet: Fleet, count: int, total: int):
    n = len(fleet.alive)
    return (lambda: fleet.join(count)), (lambda loads, gone: total * count / (n + count) if n else total)


def leave(fleet: Fleet, stop: int, kill: int):
    def change() -> set[str]:
        chosen = fleet.rng.sample(sorted(fleet.alive), stop + kill)
        for runner_id in chosen[:stop]:
            fleet.stop(runner_id)
        for runner_id in chosen[stop:]:
            fleet.kill(runner_id)
        return set(chosen)
    return change, (lambda loads, gone: sum(loads[g] for g in gone))


def show(row: Row) -> None:
    if row["real_time"]:
        conv = (f"real time: every session held again {row['claimed']:.1f} s after the event, converged after {row['wall_s']:.1f} s; "
                f"{row['locked']} of {row['runner_ticks']} ticks took the lock")
    elif row["rounds"] is None:
        conv = f"NOT converged in {MAX_ROUNDS} rounds"
    else:
        conv = ((f"every session held again after {row['claimed']} round(s), " if row["claimed"] else "")
                + f"converged after {row['rounds']} rounds = {row['rounds'] * HEARTBEAT:.0f} s simulated, "
                f"{row['wall_s']:.1f} s wall here")
    say(f"  {row['event']}: {row['runners']} runners; {conv}; moved {row['moved']:,} (least {row['least']:,}); "
        f"max/mean {row['max_mean']:.3f} min/mean {row['min_mean']:.3f}; orphan slots {row['orphans']}"
        + (f"; {row['takers']} runners took the leavers' sessions, the most {row['spread']:,} (even share "
           f"{row['even_share']:,.0f})" if row["even_share"] else ""))


def table(rows: list[Row], args) -> None:
    say(f"| event ({args.sessions:,} sessions, PLACEMENT_STEP {args.step}) | runners after | rounds = s to converge | "
        "wall s here | all held after | sessions moved | least possible | max/mean | min/mean | orphan slots | most taken by one (even share) |")
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        spread = f"{r['spread']:,} ({r['even_share']:,.0f})" if r["even_share"] else "-"
        rounds = "real time" if r["real_time"] else ("not converged" if r["rounds"] is None else str(r["rounds"]))
        held = "-" if r["claimed"] is None else f"{r['claimed']:.1f} s" if r["real_time"] else f"{r['claimed']} round(s)"
        say(f"| {r['event']} | {r['runners']} | {rounds} | {r['wall_s']:.1f} | {held} | {r['moved']:,} | {r['least']:,} | "
            f"{r['max_mean']:.3f} | {r['min_mean']:.3f} | {r['orphans']} | {spread} |")


def steady(fleet: Fleet, rounds: int) -> Row:
    """`rounds` rounds at rest, counted."""
    mark, ticks, first, locked = Load.mark(), fleet.ticks, len(fleet.tick_ms), fleet.balanced
    Load.on = True
    for _ in range(rounds):
        fleet.round()
    Load.on = False
    statements, kinds = Load.since(mark)
    return {"statements": statements, "runner_ticks": fleet.ticks - ticks, "tick_ms": fleet.tick_ms[first:],
            "runner_ms": fleet.runner_ms[first:], "kinds": kinds, "locked": fleet.balanced - locked}


def real_time_window(fleet: Fleet, seconds: float) -> Row:
    """Every runner on its own clock for `seconds` (the clocks keep running after)."""
    fleet.start_clocks()
    time.sleep(2 * HEARTBEAT)  # every runner has ticked: the window starts at rest
    mark, ticks, first, locked = Load.mark(), fleet.ticks, len(fleet.tick_ms), fleet.balanced
    Load.on = True
    started = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    Load.on = False
    statements, _ = Load.since(mark)
    return {"seconds": elapsed, "statements": statements, "runner_ticks": fleet.ticks - ticks,
            "tick_ms": fleet.tick_ms[first:], "locked": fleet.balanced - locked}


def load_report(m: int, calm: Row, rebalance: Row, live: Row | None, floor_ms: float) -> None:
    per = calm["statements"] / calm["runner_ticks"]
    say(f"Database load at {m} runners (statements counted on the client; a round = 1 s of the real fleet):")
    say(f"  steady state, after convergence: {per:.1f} statements per runner tick = {per * m / HEARTBEAT:,.0f} "
        f"statements/s at {m} runners x 1 tick/s; by kind (per runner tick, mean ms each):")
    for kind, (count, seconds) in sorted(calm["kinds"].items(), key=lambda kv: -kv[1][0]):
        say(f"    {count / calm['runner_ticks']:4.2f} x {seconds / count * 1000:6.2f} ms  {kind}")
    say(f"    {2:4.2f} x          BEGIN, COMMIT (one transaction block)")
    busy = rebalance["statements"] / max(1, rebalance["runner_ticks"])
    say(f"  while rebalancing (the join to {m}, {rebalance['rounds']} rounds): {busy:.1f} statements per runner tick = "
        f"{busy * m / HEARTBEAT:,.0f} statements/s")
    mean, rmean = statistics.mean(calm["tick_ms"]), statistics.mean(rebalance["tick_ms"])
    say(f"  PlacementRepository.tick: steady mean {mean:.2f} ms, p99 {pct(calm['tick_ms'], 99):.2f} ms; rebalancing mean "
        f"{rmean:.2f} ms, p99 {pct(rebalance['tick_ms'], 99):.2f} ms; the whole runner tick {statistics.mean(calm['runner_ms']):.2f} ms"
        f" (baseline, same run: SELECT 1 through the pool p50 {floor_ms:.2f} ms; a steady tick = {mean / floor_ms:.1f} of them)")
    say(f"  time inside tick transactions (client clock): {m} x {mean:.2f} ms = {m * mean / 10:.0f}% of each second at rest, "
        f"{m * rmean / 10:.0f}% while rebalancing, i.e. about that share of one database connection busy; the placement lock (asks, releases) was taken by {calm['locked']} of {calm['runner_ticks']} "
        f"ticks at rest, {rebalance['locked']} of {rebalance['runner_ticks']} while rebalancing (a tick that finds it "
        "taken asks nothing that second; claims of orphans need no lock)")
    if live:
        lm = statistics.mean(live["tick_ms"])
        say(f"  real time, {live['seconds']:.0f} s at rest, each runner its own thread: {live['runner_ticks'] / live['seconds']:.0f} "
            f"runner ticks/s, {live['statements'] / live['seconds']:,.0f} statements/s measured; tick mean {lm:.2f} ms, "
            f"p99 {pct(live['tick_ms'], 99):.2f} ms; {live['locked']} of {live['runner_ticks']} ticks took the lock")


def embedded_with_connections(data_dir: Path, needed: int) -> None:
    """A lifeline per runner plus the pool need more than the default 100 connections: raise
    the limit of this bench's own embedded server (restarted once when it was lower)."""
    server = start_embedded(data_dir / "pgdata")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        if int(conn.execute("SHOW max_connections").fetchone()[0]) < needed:
            conn.execute(f"ALTER SYSTEM SET max_connections = {needed}")
    server.cleanup()


def timeline(fleet: Fleet, args) -> None:
    m, total = args.runners, args.sessions
    tenth, half = max(2, m // 10), m // 2
    kill5, down, kill3 = max(1, m // 20), int(m * 0.4), max(1, m * 3 // 100)
    rows: list[Row] = []

    def event(name: str, kind, *extra, real_time: bool = False) -> Row:
        change, least = kind(fleet, *extra)
        rows.append(run_event(fleet, name, change, least, real_time=real_time))
        show(rows[-1])
        return rows[-1]

    event("start: 1 runner", join, 1, total)
    event(f"join 1 -> {tenth}", join, tenth - 1, total)
    event(f"join {tenth} -> {half}", join, half - tenth, total)
    rebalance = event(f"join {half} -> {m}", join, m - half, total)
    calm, floor_ms = steady(fleet, args.steady), fleet.round_trip_ms()
    live = real_time_window(fleet, args.realtime) if args.realtime else None
    if live:
        event(f"kill {kill5} of {m}, in real time", leave, 0, kill5, real_time=True)
        fleet.stop_clocks()
    n = len(fleet.alive)
    event(f"kill {kill5} of {n}", leave, 0, kill5)
    n -= kill5
    event(f"down {n} -> {down}: {n - down - kill5} stopped + {kill5} killed", leave, n - down - kill5, kill5)
    event(f"kill {kill3} of {down}", leave, 0, kill3)
    say()
    table(rows, args)
    say()
    load_report(m, calm, rebalance, live, floor_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--runners", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step", type=int, default=500, help="PLACEMENT_STEP")
    parser.add_argument("--steady", type=int, default=20, help="rounds measured at rest at full size")
    parser.add_argument("--realtime", type=float, default=10, help="seconds at rest in real time (0: no real-time part)")
    parser.add_argument("--quick", action="store_true", help="10,000 sessions, 1 -> 20 -> 8 runners")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.runners, args.steady, args.realtime = 10_000, 20, 10, 5
    data_dir = ROOT / ".zemeow" / "scale_sim"
    env = {**os.environ, "DATA_DIR": str(data_dir), "QUEUE_PREFIX": f"zss{os.getpid()}", "LOG_LEVEL": "WARNING",
           "ADMIN_API_KEY": "bench-admin-key-0123456789abcdef", "ENCRYPTION_KEY": "bench-encryption-key"}
    if not env.get("DATABASE_URL"):
        embedded_with_connections(data_dir, args.runners + 50)
    stack = LocalStackEnvironment(env, database_name=f"zemeow_scale_{os.getpid()}", fresh_database=True, log=lambda _: None)
    fleet = None
    try:
        url = stack.start_database()
        stack.migrate()
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:  # no statement timeout: a trigger runs per row
            conn.execute("INSERT INTO sessions (session_id, name, api_key_hash) SELECT 'sim-' || g, 'sim', md5('sim' || g) "
                         "FROM generate_series(1, %s) g", (args.sessions,))
            conn.execute("VACUUM ANALYZE slot_placements")
        say(f"# {args.sessions:,} sessions inserted in {time.perf_counter() - started:.1f} s (one INSERT ... SELECT; the slot "
            f"count trigger runs per row); 4,096 slots; PLACEMENT_STEP={args.step}; seed {args.seed}; up to "
            f"{args.runners} runners, each with its own lifeline connection")
        Load.install()
        fleet = Fleet(Database(url, max_size=10, application_name="scale-sim"), args.step, random.Random(args.seed))
        timeline(fleet, args)
    finally:
        if fleet:
            fleet.close()
            fleet.db.close()
        stack.stop(drop_database=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
