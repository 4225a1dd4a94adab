"""Simulated runners for bench/scale_sim.py: the real repositories, one lifeline each, and the
statements they send counted (and timed by kind) by wrapping psycopg in this process only."""
from __future__ import annotations

import random
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any

import psycopg

from chalicelib.db import Database
from chalicelib.repositories.placement import PlacementRepository
from chalicelib.repositories.runners import RunnerRepository, live_runners_sql
from runner_container.lifeline import Lifeline

TTL = 15.0  # RUNNER_LEASE_TTL (a kill is seen through the lifeline, not the TTL)
HEARTBEAT = 1.0  # RUNNER_HEARTBEAT_INTERVAL


class Load:
    """Every statement the simulated runners send: `Cursor.execute` calls (each `conn.execute`),
    timed by kind (its first words), and `conn.transaction()` blocks (a BEGIN and a COMMIT
    each). The observer's own reads run under `Load.off()` and are not counted."""

    on = False
    statements = blocks = 0
    kinds: dict[str, list[float]] = {}  # kind -> [count, seconds]
    _lock = threading.Lock()
    _local = threading.local()

    @classmethod
    def install(cls) -> None:
        execute, transaction = psycopg.Cursor.execute, psycopg.Connection.transaction

        def counted_execute(self, query, *args, **kwargs):
            if not cls.on or getattr(cls._local, "off", False):
                return execute(self, query, *args, **kwargs)
            started = time.perf_counter()
            try:
                return execute(self, query, *args, **kwargs)
            finally:
                kind = " ".join(str(query).split()[:8])[:60] or "(the pool's check of an idle connection)"
                with cls._lock:
                    cls.statements += 1
                    entry = cls.kinds.setdefault(kind, [0, 0.0])
                    entry[0] += 1
                    entry[1] += time.perf_counter() - started

        def counted_transaction(self, *args, **kwargs):
            if cls.on and not getattr(cls._local, "off", False):
                with cls._lock:
                    cls.blocks += 1
            return transaction(self, *args, **kwargs)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Connection.transaction = counted_transaction  # type: ignore[method-assign]

    @classmethod
    def total(cls) -> int:
        return cls.statements + 2 * cls.blocks

    @classmethod
    def mark(cls) -> tuple[int, dict[str, list[float]]]:
        return cls.total(), {k: list(v) for k, v in cls.kinds.items()}

    @classmethod
    def since(cls, mark: tuple[int, dict[str, list[float]]]) -> tuple[int, dict[str, list[float]]]:
        before = mark[1]
        return cls.total() - mark[0], {k: [v[0] - before.get(k, [0, 0.0])[0], v[1] - before.get(k, [0, 0.0])[1]]
                                       for k, v in cls.kinds.items() if v[0] > before.get(k, [0, 0.0])[0]}

    @classmethod
    @contextmanager
    def off(cls):
        cls._local.off = True
        try:
            yield
        finally:
            cls._local.off = False


class Fleet:
    """Simulated runners: what the supervisor's tick does with the database, nothing else."""

    def __init__(self, db: Database, step: int, rng: random.Random):
        self.db, self.step, self.rng = db, step, rng
        self.runners, self.placement = RunnerRepository(db), PlacementRepository(db)
        self.alive: list[str] = []
        self.lifelines: dict[str, Lifeline] = {}
        self.tick_ms: list[float] = []  # PlacementRepository.tick
        self.runner_ms: list[float] = []  # the whole runner tick
        self.ticks = self.balanced = self.serial = 0
        self.clocks: dict[str, tuple[threading.Event, threading.Thread]] = {}
        self._lock = threading.Lock()

    # -- the runners' side --------------------------------------------------------------
    def join(self, count: int) -> set[str]:
        for _ in range(count):
            self.serial += 1
            runner_id = f"sim-{self.serial:03d}-{uuid.uuid4().hex[:4]}"
            self.runners.register(runner_id, hostname="sim", pid=self.serial, version="sim", driver="sim")
            self.lifelines[runner_id] = Lifeline(self.db, runner_id)
            self.lifelines[runner_id].ensure()
            self.alive.append(runner_id)
            if self.clocks:
                self._start_clock(runner_id)
        return set()

    def kill(self, runner_id: str) -> None:
        """SIGKILL: the lifeline connection ends; the row stays as it was (heartbeat fresh)."""
        self._halt(runner_id)
        self.lifelines.pop(runner_id).close()
        self.alive.remove(runner_id)

    def stop(self, runner_id: str) -> None:
        """The supervisor's graceful stop, its actors stopped: release, mark stopped, lifeline closed."""
        self._halt(runner_id)
        self.placement.release_all(runner_id)
        self.runners.mark_stopped(runner_id)
        self.lifelines.pop(runner_id).close()
        self.alive.remove(runner_id)

    def tick(self, runner_id: str) -> None:
        """The supervisor's tick: heartbeat, lifeline check, placement, handovers at once."""
        started = time.perf_counter()
        self.runners.heartbeat(runner_id, max_sessions=None)
        self.lifelines[runner_id].ensure()
        before = time.perf_counter()
        view = self.placement.tick(runner_id, ttl=TTL, step=self.step, cap=None)
        placed = time.perf_counter()
        if view.handing:
            self.placement.hand_over(runner_id, sorted(view.handing), TTL)
        with self._lock:
            self.tick_ms.append((placed - before) * 1000)
            self.runner_ms.append((time.perf_counter() - started) * 1000)
            self.ticks += 1
            self.balanced += view.balanced

    def round(self) -> None:
        """Every live runner ticks once, one after the other, in an order shuffled each round."""
        order = list(self.alive)
        self.rng.shuffle(order)
        for runner_id in order:
            self.tick(runner_id)

    # -- real time: a thread per runner, one tick a second at its own phase ---------------
    def start_clocks(self) -> None:
        for runner_id in self.alive:
            self._start_clock(runner_id)

    def stop_clocks(self) -> None:
        for runner_id in list(self.clocks):
            self._halt(runner_id)

    def _start_clock(self, runner_id: str) -> None:
        halt, first = threading.Event(), time.monotonic() + self.rng.random() * HEARTBEAT

        def run() -> None:
            due = first
            while not halt.wait(max(0.0, due - time.monotonic())):
                self.tick(runner_id)
                due += HEARTBEAT

        thread = threading.Thread(target=run, name=runner_id, daemon=True)
        self.clocks[runner_id] = (halt, thread)
        thread.start()

    def _halt(self, runner_id: str) -> None:
        clock = self.clocks.pop(runner_id, None)
        if clock:
            clock[0].set()
            clock[1].join()

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

    def round_trip_ms(self, count: int = 200) -> float:
        """The same-run floor: a `SELECT 1` through the pool, p50."""
        times = []
        with Load.off():
            for _ in range(count):
                started = time.perf_counter()
                with self.db.connection() as conn:
                    conn.execute("SELECT 1").fetchone()
                times.append((time.perf_counter() - started) * 1000)
        return sorted(times)[len(times) // 2]

    def close(self) -> None:
        self.stop_clocks()
        for lifeline in self.lifelines.values():
            lifeline.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else 0.0


Row = dict[str, Any]
