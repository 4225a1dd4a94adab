"""Fault-injection bench: the whole local stack (devstack, as `make run` starts it, with two
runner processes on the emulator driver) under a steady load, one fault per scenario, and
one row per scenario counted from the database, the emulator's wire log and the webhook
receiver's records (bench/fault_count.py). Lost must be 0 in every row.

    .venv/bin/python -m bench.faults                      # every scenario, full scale
    .venv/bin/python -m bench.faults --scenarios 1,3,5 --scale small

Scenarios: 1 a runner SIGKILLed mid-burst; 2 both runners killed, one restarted 30 s later;
3 PostgreSQL stopped hard (`pg_ctl stop -m immediate`) for 20 s; 4 LocalStack stopped and
started again (its queues come back missing: the stack redeploys them, the outboxes resend);
5 the webhook receiver down for 10 minutes; 6 the receiver answering 500 to every other
request, and one endpoint answering after 8 s; 7 the API under twice its measured
sustainable load for 60 s.

The webhook retry schedule is compressed (WEBHOOK_RETRY_SCHEDULE below instead of the
real 5s,5m,30m,2h,5h,10h,10h) so that scenario 5's outage ends inside the retries.
The bench starts its own LocalStack on a free port (never the shared one on 4566).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fault_count import Row, table, wait_drained, wait_recovered  # noqa: E402
from bench.fault_load import Load, Session, pair_sessions  # noqa: E402
from bench.fault_receiver import FaultReceiver  # noqa: E402
from bench.fault_stack import RUNNER_IDS, FaultStack  # noqa: E402

COMPRESSED_RETRY_SCHEDULE = "1s,5s,15s,30s,60s,120s,300s"
DRAIN_AFTER_NO_RECOVERY = 60.0  # seconds: a scenario that did not recover prints its row soon after


@dataclass(frozen=True)
class Scale:
    sessions: int
    send_rate: float  # sends/s through the API
    inbound_rate: float  # inbound messages/s at the emulator
    warmup: float  # seconds of load before the fault
    tail: float  # seconds of load after the fault's end
    burst: int  # sends at once in scenario 1
    gap: float  # scenario 2: seconds before a runner is restarted
    pg_outage: float
    localstack_outage: float
    receiver_outage: float
    flaky_for: float
    overload_for: float
    recovery_timeout: float


SCALES = {
    "small": Scale(sessions=3, send_rate=3, inbound_rate=2, warmup=4, tail=3, burst=30, gap=10, pg_outage=5,
                   localstack_outage=5, receiver_outage=20, flaky_for=15, overload_for=15, recovery_timeout=120),
    "full": Scale(sessions=6, send_rate=8, inbound_rate=4, warmup=10, tail=10, burst=150, gap=30, pg_outage=20,
                  localstack_outage=10, receiver_outage=600, flaky_for=60, overload_for=60, recovery_timeout=600),
}


class Bench:
    def __init__(self, stack: FaultStack, receiver: FaultReceiver, sessions: list[Session], scale: Scale,
                 log: Callable[[str], None] = print):
        self.stack, self.receiver, self.sessions, self.scale, self.log = stack, receiver, sessions, scale, log
        self.since = 0.0  # when the last scenario started (epoch seconds)

    def run(self, number: int) -> Row:
        name, fault = SCENARIOS[number]
        self.log(f"==> scenario {number}: {name}")
        self.ensure_runners()
        since = self.since = time.time()
        load = Load(self.stack, self.sessions, f"s{number}x{int(since) % 100000}", send_rate=self.scale.send_rate,
                    inbound_rate=self.scale.inbound_rate).start()
        time.sleep(self.scale.warmup)
        fault_end = fault(self, load)
        self.log(f"    fault over; waiting for the recovery (up to {self.scale.recovery_timeout:g}s)")
        waiting: list[str] = []
        recovery = wait_recovered(self.stack, load, self.receiver, since, fault_end, self.scale.recovery_timeout,
                                  expect_runners=len(self.stack.live_runners()), waiting=waiting)
        time.sleep(max(0.0, self.scale.tail - (time.time() - fault_end)))
        load.stop()
        if recovery is None:  # say so at once; the drain then gets a short wait, not a second full one
            self.log(f"    no full recovery within {self.scale.recovery_timeout:g}s; still waiting for: "
                     f"{', '.join(waiting)}")
        drain_timeout = self.scale.recovery_timeout if recovery is not None else DRAIN_AFTER_NO_RECOVERY
        tally = wait_drained(self.stack, load, self.receiver, since, drain_timeout)
        row = tally.row(f"{number} {name}")
        row.recovery_s = recovery
        if recovery is None:
            row.notes = "; ".join(filter(None, [row.notes, "no full recovery within "
                                                f"{self.scale.recovery_timeout:g}s ({', '.join(waiting)})"]))
        self.log(table([row]))
        return row

    def ensure_runners(self) -> None:
        for rid in RUNNER_IDS:
            if rid not in self.stack.live_runners():
                self.stack.start_runner(rid)

    # -- the faults: each returns when the fault ended (epoch seconds) ------------------
    def kill_mid_burst(self, load: Load) -> float:
        victim = RUNNER_IDS[0]
        load.burst(self.scale.burst)
        time.sleep(0.5)
        self.stack.kill_runner(victim)
        self.log(f"    SIGKILL {victim} during a burst of {self.scale.burst} sends")
        return time.time()

    def kill_both(self, load: Load) -> float:
        for rid in RUNNER_IDS:
            self.stack.kill_runner(rid)
        self.log(f"    SIGKILL both runners; restarting {RUNNER_IDS[1]} in {self.scale.gap:g}s")
        time.sleep(self.scale.gap)
        self.stack.start_runner(RUNNER_IDS[1])
        return time.time()

    def database_down(self, load: Load) -> float:
        self.stack.stop_database()
        self.log(f"    pg_ctl stop -m immediate; starting again in {self.scale.pg_outage:g}s")
        time.sleep(self.scale.pg_outage)
        self.stack.start_database()
        return time.time()

    def localstack_down(self, load: Load) -> float:
        self.stack.stop_localstack()
        self.log(f"    LocalStack stopped; starting a fresh one in {self.scale.localstack_outage:g}s")
        time.sleep(self.scale.localstack_outage)
        self.stack.start_localstack()
        up = time.time()
        self.stack.wait_redeployed()
        self.log(f"    LocalStack up, stacks redeployed {time.time() - up:.1f}s later")
        return up

    def receiver_down(self, load: Load) -> float:
        self.receiver.down()
        self.log(f"    webhook receiver down for {self.scale.receiver_outage:g}s")
        time.sleep(self.scale.receiver_outage)
        self.receiver.up()
        return time.time()

    def receiver_flaky(self, load: Load) -> float:
        self.receiver.flaky = True
        self.receiver.slow_path = f"/s/{self.sessions[0].sid}"
        self.log(f"    receiver: 500 on every other request, {self.receiver.slow_path} answers after 8 s, "
                 f"for {self.scale.flaky_for:g}s")
        time.sleep(self.scale.flaky_for)
        self.receiver.flaky = False
        self.receiver.slow_path = None
        return time.time()

    def overload(self, load: Load) -> float:
        rate = self.sustainable_rate(load)
        self.log(f"    sustainable: {rate:.0f} sends/s (closed loop, 8 clients, 10 s); now {2 * rate:.0f}/s "
                 f"for {self.scale.overload_for:g}s")
        extra = Load(self.stack, self.sessions, load.tag + "-o", send_rate=2 * rate, inbound_rate=0, workers=64,
                     give_up_after=60)
        extra.stats = load.stats  # one 5xx count for the row
        extra.accepted, extra.refused, extra.abandoned = load.accepted, load.refused, load.abandoned
        extra.start()
        time.sleep(self.scale.overload_for)
        extra.stop(wait=True)
        return time.time()

    def sustainable_rate(self, load: Load, clients: int = 8, seconds: float = 10.0) -> float:
        stop = time.monotonic() + seconds
        done = []

        def client(k: int) -> None:
            n = 0
            while time.monotonic() < stop:
                load.send(self.sessions[k % len(self.sessions)], f"{load.tag}-p{k}-{n}")
                n += 1
            done.append(n)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        return sum(done) / seconds


SCENARIOS: dict[int, tuple[str, Callable[[Bench, Load], float]]] = {
    1: ("runner SIGKILL mid-burst", Bench.kill_mid_burst),
    2: ("both runners killed, one back", Bench.kill_both),
    3: ("PostgreSQL stopped (immediate)", Bench.database_down),
    4: ("LocalStack restarted (queues lost)", Bench.localstack_down),
    5: ("webhook receiver down", Bench.receiver_down),
    6: ("receiver 50% 500s + one 8 s slow", Bench.receiver_flaky),
    7: ("API at 2x sustainable load", Bench.overload),
}


def bench_env(scale: Scale) -> dict[str, str]:
    return {"WEBHOOK_RETRY_SCHEDULE": COMPRESSED_RETRY_SCHEDULE}


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default="1,2,3,4,5,6,7", help="comma-separated scenario numbers")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs, wire log)")
    args = parser.parse_args(argv)
    numbers = [int(n) for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in numbers if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {sorted(SCENARIOS)}")
    scale = SCALES[args.scale]
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the stack too (the embedded PostgreSQL outlives us)
    started = time.monotonic()
    stack = FaultStack(extra_env=bench_env(scale), keep_dir=args.keep, log=lambda m: print(m, flush=True))
    receiver = FaultReceiver()
    rows: list[Row] = []
    try:
        stack.start()
        sessions = pair_sessions(stack, receiver, scale.sessions)
        print(f"stack up: API {stack.api_url}, LocalStack {stack.env['AWS_ENDPOINT_URL']}, 2 runners, "
              f"{len(sessions)} paired sessions; data in {stack.dir}", flush=True)
        bench = Bench(stack, receiver, sessions, scale)
        for number in numbers:
            rows.append(bench.run(number))
    finally:
        receiver.close()
        stack.stop()
    print(f"\nmachine: {os.cpu_count()} cores; scale {args.scale} ({scale}); webhook retry schedule "
          f"{COMPRESSED_RETRY_SCHEDULE} (compressed; real 5s,5m,30m,2h,5h,10h,10h); "
          f"{time.monotonic() - started:.0f}s in all\n")
    print(table(rows))
    lost = sum(r.lost for r in rows)
    print(f"\nlost in all rows: {lost}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
