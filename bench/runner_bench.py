"""Runner benchmarks: command round trip, failover time, memory per session.

    .venv/bin/python bench/runner_bench.py roundtrip [--commands 1000] [--sessions 10]
    .venv/bin/python bench/runner_bench.py failover  [--sessions 20] [--heartbeat 1s --ttl 15s]
    .venv/bin/python bench/runner_bench.py memory    [--driver emulator|neonize|both] [--counts 0,100,1000]

roundtrip: commands go the API's way (`POST .../messages?wait=true`: CommandOutbox.submit
  with wait: the row, whose insert rings the runner's doorbell; the SQS message to the
  holder's queue only if no runner took it within DOORBELL_GRACE_SECONDS) to one emulator
  runner, which executes them (send_message: the emulator's outbox, a message.sent event)
  and writes the result; the caller awaits the row (LISTEN/NOTIFY). One session per client
  thread, so each session's commands are sequential as FIFO requires.
  Baselines, same run: the floor any SQS round trip pays here, one at a time: a bare SQS
  FIFO send -> long-poll receive (the runner's poll settings) -> delete, then a pg_notify
  that wakes a LISTEN (ratio = roundtrip p50 / floor p50); and a first pass at N sessions
  with the doorbell's trigger off in the bench's database and no grace, so commands reach
  the runner by SQS alone, sent at once, as before the doorbell.
failover: two runners, N paired sessions; kill -9 the runner holding the first session; time until
  every session it held is authenticated again on the survivor (no QR). Run twice
  on the same stack: first with RUNNER_LIFELINE=off (the baseline: the survivor may steal
  only once the lease TTL has run out), then with the lifeline (the lease moves when the
  killed runner's connection ends); each with the steal and the restore after it.
memory: a runner's RSS with 0/100/1000 sessions held, for each driver: emulator sessions
  paired and authenticated; neonize clients dialing WhatsApp through their session proxy,
  a real pproxy on loopback that sends every tunnel on to a local holder, which accepts it
  and never answers (nothing leaves the machine). Baseline, same run: the idle runner's
  RSS (0 sessions); the figure is MB per session above it.

Each run uses its own database and queue prefix (like the test suite), reuses a LocalStack
on 127.0.0.1:4566 (or starts one), and removes its queues and database at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.bootstrap import Container  # noqa: E402
from chalicelib.commands import outbox  # noqa: E402
from chalicelib.config import load_settings  # noqa: E402
from chalicelib.placement import slot_of  # noqa: E402
from chalicelib.repositories.placement import PlacementRepository  # noqa: E402
from chalicelib.schemas.sessions import CreateSessionRequest  # noqa: E402
from devstack.processes import Child, free_port, start_child  # noqa: E402
from devstack import offline_env  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402


def say(message: str) -> None:
    print(message, flush=True)


def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "QUEUE_PREFIX")}
    env.update({
        "ENVIRONMENT": "test", "DATA_DIR": str(ROOT / ".zemeow" / "bench"), "QUEUE_PREFIX": f"zr{os.getpid()}",
        "ADMIN_API_KEY": "zadm_bench_" + secrets.token_urlsafe(16),
        "ENCRYPTION_KEY": secrets.token_urlsafe(32), "LOG_LEVEL": "WARNING", "WHATSAPP_DRIVER": "emulator",
        "EMULATOR_TOKEN": secrets.token_urlsafe(24), "DB_POOL_MAX_SIZE": "30",
        "API_RATE_LIMIT": "off",  # these benches measure throughput, not the per-key limit
        **extra,
    })
    return offline_env(env)  # the processes it starts resolve and connect on loopback only


def wait_for(condition, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Bench:
    def __init__(self, **env: str):
        self.stack = LocalStackEnvironment(bench_env(**env), database_name=f"zemeow_bench_{os.getpid()}",
                                           fresh_database=True, log=lambda m: None)
        self.runners: dict[str, tuple[Child, int, int]] = {}
        self.logs: list[str] = []

    def __enter__(self) -> "Bench":
        self.stack.start_database()
        self.stack.migrate()
        self.stack.start_localstack()
        self.stack.deploy_messaging()
        os.environ.update({k: self.stack.env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                                          "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
                           if k in self.stack.env})
        self.container = Container(load_settings(self.stack.env))
        return self

    def __exit__(self, *exc) -> None:
        for child, _, _ in self.runners.values():
            child.stop()
        for path in self.logs:
            try:
                os.unlink(path)
            except OSError:
                pass
        self.container.close()
        self.stack.stop(delete_queues=True, drop_database=True)

    def start_runner(self, runner_id: str, **extra: str) -> Child:
        emulator_port, metrics_port = free_port(), free_port()
        env = {**self.stack.env, "RUNNER_ID": runner_id, "EMULATOR_PORT": str(emulator_port),
               "METRICS_PORT": str(metrics_port), **extra}
        log = tempfile.NamedTemporaryFile("w", prefix=f"{runner_id}-", suffix=".log", delete=False)
        self.logs.append(log.name)
        child = start_child(runner_id, [sys.executable, "-m", "runner_container"], env, str(ROOT),
                            stdout=log, stderr=subprocess.STDOUT)
        self.runners[runner_id] = (child, emulator_port, metrics_port)
        import urllib.request

        def healthy():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for(healthy, 60, 0.1, f"runner {runner_id} healthy")
        return child

    def emulator(self, runner_id: str, path: str, body: dict | None = None) -> int:
        import json
        import urllib.error
        import urllib.request

        port = self.runners[runner_id][1]
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST",
                                         data=json.dumps(body or {}).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "X-Emulator-Token": self.stack.env["EMULATOR_TOKEN"]})
        try:
            return urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as exc:
            return exc.code

    def held_sessions(self, runner_id: str) -> int:
        """Sessions the runner holds (its /healthz `sessions`: one actor, with its client, each)."""
        import json  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.runners[runner_id][2]}/healthz", timeout=5) as answer:
                return int(json.loads(answer.read()).get("sessions", 0))
        except (OSError, ValueError):
            return 0

    def create_sessions(self, count: int, **fields) -> list[str]:
        ids = []
        for i in range(count):
            sid = f"b{i:04d}-{uuid.uuid4().hex[:6]}"
            self.container.sessions.create(CreateSessionRequest(name=f"bench {i}", session_id=sid, **fields))
            ids.append(sid)
        return ids

    def statuses(self, ids: list[str]) -> dict[str, tuple[str, str | None]]:
        with self.container.db.connection() as conn:
            rows = conn.execute("SELECT s.session_id, s.status, r.runner_id FROM sessions s LEFT JOIN "
                                "session_runtime r USING (session_id) WHERE s.session_id = ANY(%s)",
                                (ids,)).fetchall()
        return {r["session_id"]: (r["status"], r["runner_id"]) for r in rows}

    def pair_directly(self, ids: list[str]) -> None:
        """Emulated devices already paired: the runner restores them (no QR), as after a restart."""
        with self.container.db.connection() as conn:
            for sid in ids:
                jid = f"5511{secrets.randbelow(10**9):09d}:1@s.whatsapp.net"
                conn.execute("INSERT INTO emulator_devices (session_id, jid) VALUES (%s, %s)", (sid, jid))
                conn.execute("UPDATE sessions SET jid = %s, desired_state = 'connected' WHERE session_id = %s",
                             (jid, sid))


def rss_mb(pid: int) -> float:
    total = 0
    for child_pid in [pid]:
        with open(f"/proc/{child_pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# -- roundtrip --------------------------------------------------------------------------
DOORBELL_GRACE = outbox.DOORBELL_GRACE_SECONDS


def roundtrip(args) -> None:
    with Bench() as bench:
        bench.start_runner("bench-rt")
        ids = bench.create_sessions(args.sessions)
        bench.pair_directly(ids)
        wait_for(lambda: all(s == "authenticated" for s, _ in bench.statuses(ids).values()), 60, 0.1,
                 "sessions restored")
        bus = bench.container.commands

        marks: dict[str, tuple[float, float]] = {}  # command id -> (wall clock before enqueue, after the answer)

        def one(sid: str, n: int) -> float:
            """What `POST /sessions/{id}/messages?wait=true` does: CommandOutbox.submit(wait=True)."""
            started, wall = time.perf_counter(), time.time()
            done = bus.submit(sid, "send_message", {"to": "5511777770000", "type": "text", "text": f"m{n}"},
                              wait=True, timeout=30).body
            if done["status"] != "succeeded":
                raise SystemExit(f"command failed: {done}")
            marks[done["command_id"]] = (wall, time.time())
            return (time.perf_counter() - started) * 1000

        for sid in ids:  # warm-up: connections, queue URL caches
            for n in range(5):
                one(sid, n)

        def run(concurrency: int, total: int) -> tuple[list[float], float]:
            per = total // concurrency
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                chunks = list(pool.map(lambda sid: [one(sid, n) for n in range(per)], ids[:concurrency]))
            elapsed = time.perf_counter() - started
            return [v for chunk in chunks for v in chunk], elapsed

        floor = floor_roundtrip(bench, min(args.commands, 300))
        say(f"floor (same run, bare SQS FIFO send -> long-poll receive -> delete, then pg_notify -> LISTEN; "
            f"one at a time): p50 {statistics.median(floor):.1f} ms, p99 {percentile(floor, 99):.1f} ms")
        cpu = CpuMeter(bench)
        passes = [(args.sessions, args.commands, False)] if args.sqs_only_baseline else []
        passes += [(1, args.commands, True), (4, args.commands, True), (args.sessions, args.commands, True)]
        for concurrency, total, doorbell in passes:
            set_doorbell(bench, doorbell)
            marks.clear()
            cpu.start()
            latencies, elapsed = run(concurrency, total)
            path = "" if doorbell else " [baseline, same run: doorbell trigger off, commands by SQS only]"
            say(f"roundtrip emulator{path}: {len(latencies)} send_message commands, {concurrency} session(s) in"
                f" parallel: p50 {statistics.median(latencies):.1f} ms, p90 {percentile(latencies, 90):.1f} ms,"
                f" p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms,"
                f" {len(latencies) / elapsed:.0f} commands/s; p50 vs floor x{statistics.median(latencies) / statistics.median(floor):.1f}")
            say("  where the time goes (p50, ms): " + breakdown(bench, marks))
            say("  CPU per command (ms): " + cpu.per(len(latencies)))


def set_doorbell(bench: "Bench", on: bool) -> None:
    """The bench's own database only: with the insert trigger off, commands reach the
    runner by SQS alone (the way before the doorbell), for a same-run baseline; the waiting
    submit then sends at once, as it did before the doorbell (no grace to wait out)."""
    with bench.container.db.connection() as conn:
        conn.execute(f"ALTER TABLE commands {'ENABLE' if on else 'DISABLE'} TRIGGER commands_notify_new")
    outbox.DOORBELL_GRACE_SECONDS = DOORBELL_GRACE if on else 0.0


class CpuMeter:
    """CPU time per command by process: this process (the API's side: insert, SQS send,
    await), the runner, the bench's PostgreSQL (its backends) and LocalStack (shared with
    whatever else uses it: an upper bound). On two shared cores, CPU is what latency
    under concurrency is made of."""

    def __init__(self, bench: "Bench"):
        import psutil  # noqa: PLC0415

        self.psutil = psutil
        with bench.container.db.connection() as conn:
            backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        localstack = next((c.pid for c in psutil.net_connections("tcp") if c.status == "LISTEN"
                           and c.laddr and c.laddr.port == 4566 and c.pid), None)
        self.groups = {"API side (bench)": lambda: [psutil.Process()],
                       "runner": lambda: [psutil.Process(child.process.pid) for child, _, _ in bench.runners.values()
                                          if child.alive()],
                       "PostgreSQL": lambda: psutil.Process(backend).parent().children(),
                       "LocalStack (shared)": lambda: [psutil.Process(localstack)] if localstack else []}
        self.before: dict[str, float] = {}

    def _total(self, name: str) -> float:
        total = 0.0
        for process in self.groups[name]():
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except self.psutil.Error:
                pass
        return total

    def start(self) -> None:
        self.before = {name: self._total(name) for name in self.groups}

    def per(self, count: int) -> str:
        return ", ".join(f"{name} {(self._total(name) - self.before[name]) * 1000 / max(1, count):.1f}"
                         for name in self.groups)


def breakdown(bench: Bench, marks: dict[str, tuple[float, float]]) -> str:
    """Stages of each round trip from the command row's timestamps (one clock: same machine):
    the API's insert, the SQS hand-off (send + the runner's receive + its claim), the
    runner's execution, and the completion's way back (NOTIFY, the API's re-read)."""
    with bench.container.db.connection() as conn:
        rows = conn.execute("SELECT id::text AS id, extract(epoch FROM created_at) AS c, "
                            "extract(epoch FROM started_at) AS s, extract(epoch FROM finished_at) AS f "
                            "FROM commands WHERE id = ANY(%s::uuid[])", (list(marks),)).fetchall()
    stages: dict[str, list[float]] = {"insert": [], "to claim": [], "execute": [], "back to API": []}
    for r in rows:
        t0, t1 = marks[r["id"]]
        c, s, f = float(r["c"]), float(r["s"]), float(r["f"])
        for name, value in (("insert", c - t0), ("to claim", s - c), ("execute", f - s), ("back to API", t1 - f)):
            stages[name].append(value * 1000)
    return ", ".join(f"{name} {statistics.median(values):.1f}" for name, values in stages.items() if values)


def floor_roundtrip(bench: Bench, count: int) -> list[float]:
    """What a command round trip costs without the runner's work: send to a bare FIFO queue,
    a poller (the runner's settings: long poll 2 s, up to 10) receives and deletes it and
    sends a pg_notify, which wakes the caller's LISTEN. Sequential; milliseconds."""
    import psycopg  # noqa: PLC0415

    sqs = bench.container.sqs
    url = sqs.create_queue(QueueName=f"{bench.container.settings.queue_prefix}-floor.fifo",
                           Attributes={"FifoQueue": "true"})["QueueUrl"]
    channel = f"zr_floor_{os.getpid()}"
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(bench.container.database_url, autocommit=True) as conn:
            while not stop.is_set():
                for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=2).get("Messages", []):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    conn.execute("SELECT pg_notify(%s, %s)", (channel, message["Body"]))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    latencies: list[float] = []
    try:
        with psycopg.connect(bench.container.database_url, autocommit=True) as listen:
            listen.execute(f"LISTEN {channel}")
            for n in range(count):
                started = time.perf_counter()
                sqs.send_message(QueueUrl=url, MessageBody=str(n), MessageGroupId="floor",
                                 MessageDeduplicationId=f"{n}-{uuid.uuid4().hex}")
                for notice in listen.notifies(timeout=30):
                    if notice.payload == str(n):
                        break
                else:
                    raise SystemExit("floor: no notification within 30 s")
                latencies.append((time.perf_counter() - started) * 1000)
    finally:
        stop.set()
        poller.join(timeout=5)
        sqs.delete_queue(QueueUrl=url)
    return latencies


# -- failover ---------------------------------------------------------------------------
def failover(args) -> None:
    timing = {"RUNNER_HEARTBEAT_INTERVAL": args.heartbeat, "RUNNER_LEASE_TTL": args.ttl}
    with Bench(**timing) as bench:
        ids = bench.create_sessions(args.sessions)
        bench.pair_directly(ids)
        ttl = load_settings(bench.stack.env).runner_lease_ttl
        say(f"failover: heartbeat {args.heartbeat}, lease TTL {args.ttl}, {args.sessions} paired sessions; "
            f"kill -9 the runner holding the first session, time until its sessions are authenticated on the survivor")
        figures = {}
        for lifeline in ("off", "on"):  # the baseline first: the same stack without the lifeline (TTL only)
            stolen, took, moved = failover_once(bench, ids, lifeline)
            figures[lifeline] = took
            what = "baseline, TTL only" if lifeline == "off" else "lifeline"
            say(f"failover RUNNER_LIFELINE={lifeline} ({what}): {moved} sessions authenticated on the survivor "
                f"{took:.1f} s after kill -9; slot taken over after {stolen:.1f} s (x{stolen / ttl:.2f} of the TTL), "
                f"restore after the steal {took - stolen:.1f} s")
        say(f"failover: {figures['on']:.1f} s with the lifeline vs {figures['off']:.1f} s without it (same run); "
            f"target <= 5 s")


def failover_once(bench: Bench, ids: list[str], lifeline: str) -> tuple[float, float, int]:
    pair = (f"fo-{lifeline}-a", f"fo-{lifeline}-b")
    with bench.container.db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
    bench.start_runner(pair[0], RUNNER_LIFELINE=lifeline)
    wait_for(lambda: set(bench_owners(bench).values()) == {pair[0]}, 60, 0.1, "A holds every slot")
    bench.start_runner(pair[1], RUNNER_LIFELINE=lifeline)
    wait_for(lambda: sum(1 for r in bench_owners(bench).values() if r == pair[1]) >= 1900, 60, 0.1, "shared")
    wait_for(lambda: all(s == "authenticated" and r in pair for s, r in bench.statuses(ids).values()), 120, 0.1,
             "sessions restored")
    owners = bench_owners(bench)
    victim = owners[slot_of(ids[0])]
    survivor = next(r for r in pair if r != victim)
    moved = [sid for sid in ids if owners[slot_of(sid)] == victim]
    watched = slot_of(ids[0])
    bench.runners[victim][0].kill()
    killed = time.monotonic()
    wait_for(lambda: bench_owners(bench).get(watched) == survivor, 120, 0.02, "the slot taken over")
    stolen = time.monotonic() - killed
    wait_for(lambda: all(v == ("authenticated", survivor) for v in bench.statuses(moved).values()), 120, 0.02,
             "sessions moved")
    took = time.monotonic() - killed
    bench.runners[survivor][0].stop()  # SIGTERM: releases its slots for the next round
    return stolen, took, len(moved)


def bench_owners(bench: Bench) -> dict[int, str | None]:
    """Placement: slot -> its holder (None: none, or a stopped runner)."""
    with bench.container.db.connection() as conn:
        return PlacementRepository.holders(conn)


# -- memory -----------------------------------------------------------------------------
class HoldingProxy:
    """Accepts HTTP CONNECT tunnels and holds them without answering: a dial that never ends
    (until the client or the proxy in front gives up and dials again: `seen` counts them all)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.open = 0
        self.seen = 0
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    def _serve(self) -> None:
        async def handle(reader, writer):
            self.open += 1
            self.seen += 1
            try:
                await reader.read(65536)  # the CONNECT request; never answered
                await reader.read()  # hold until the client gives up
            finally:
                self.open -= 1
                writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", self.port, backlog=2048)
            self._ready.set()
            async with server:
                await server.serve_forever()

        asyncio.run(main())


def allow_connections(count: int) -> None:
    """whatsmeow opens a database/sql pool per client (at least one connection each), so 500
    neonize sessions need ~600 server connections; raise the bench server's limit."""
    pgdata = ROOT / ".zemeow" / "bench" / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    auto = pgdata / "postgresql.auto.conf"
    lines = [l for l in (auto.read_text().splitlines() if auto.exists() else []) if "max_connections" not in l]
    auto.write_text("\n".join(lines + [f"max_connections = {count}"]) + "\n")


def memory(args) -> None:
    counts = [int(c) for c in args.counts.split(",")]
    drivers = ["emulator", "neonize"] if args.driver == "both" else [args.driver]
    for driver in drivers:
        memory_of(driver, counts)


def memory_of(driver: str, counts: list[int]) -> None:
    if driver == "neonize":
        allow_connections(max(counts) * 2 + 200)
    holding = HoldingProxy() if driver == "neonize" else None
    with contextlib.ExitStack() as stack, Bench(WHATSAPP_DRIVER=driver, RUNNER_RECONCILE_INTERVAL="2s",
                                                PROXY_ALLOW_PRIVATE="true", DB_POOL_MAX_SIZE="100") as bench:
        proxy_port = 0
        if holding is not None:  # each session's proxy: a real pproxy, sending every tunnel on to the holder
            proxy_port = stack.enter_context(pproxy_in_front_of(holding.port))
        runner_id = f"bench-mem-{driver}"
        child = bench.start_runner(runner_id)
        pid = child.process.pid
        time.sleep(2)  # settle (nothing to await: idle runner)
        results = []
        held: list[str] = []
        for count in counts:
            extra = count - len(held)
            if extra > 0:
                if driver == "neonize":
                    ids = bench.create_sessions(extra, proxy={"enabled": True, "type": "http", "host": "127.0.0.1",
                                                              "port": proxy_port})
                    with bench.container.db.connection() as conn:
                        conn.execute("UPDATE sessions SET desired_state = 'connected' WHERE session_id = ANY(%s)",
                                     (ids,))
                    held += ids
                    # every session has its client, and every client has dialed through pproxy
                    # (a dial is held until pproxy's or whatsmeow's timeout, then made again)
                    wait_for(lambda: bench.held_sessions(runner_id) >= len(held) and holding.seen >= len(held),
                             900, 0.5, f"{len(held)} clients dialing (seen: {holding.seen})")
                else:
                    ids = bench.create_sessions(extra)
                    bench.pair_directly(ids)
                    held += ids
                    wait_for(lambda: sum(s == "authenticated" for s, _ in bench.statuses(held).values())
                             == len(held), 600, 0.2, f"{len(held)} sessions authenticated")
            time.sleep(3)  # let allocations settle before reading RSS
            results.append((len(held), rss_mb(pid)))
            tunnels = f", {holding.open} tunnels held now" if holding is not None else ""
            say(f"memory {driver}: {len(held)} sessions -> runner RSS {results[-1][1]:.1f} MB{tunnels}")
        base_count, base = results[0]
        for n, rss in results[1:]:
            say(f"memory {driver}: {(rss - base) / max(1, n - base_count):.2f} MB per session at {n} sessions "
                f"(baseline, same run: {base:.1f} MB with {base_count} sessions)")


@contextlib.contextmanager
def pproxy_in_front_of(upstream_port: int):
    """A real pproxy (HTTP CONNECT) on loopback whose every tunnel goes on to `upstream_port`
    (the holder): neonize's dial of web.whatsapp.com:443 reaches pproxy and stops at the
    holder, so nothing leaves the machine. Name lookups inside pproxy are loopback-only."""
    from tests.integration.test_proxy import PPROXY_LOOPBACK_ONLY  # noqa: PLC0415

    port = free_port()
    log = tempfile.NamedTemporaryFile("wb", prefix="bench-pproxy-", suffix=".log", delete=False)
    child = start_child("pproxy", [sys.executable, "-c", PPROXY_LOOPBACK_ONLY, "-l", f"http://127.0.0.1:{port}",
                                   "-r", f"http://127.0.0.1:{upstream_port}"],
                        {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}, str(ROOT), stdout=log,
                        stderr=subprocess.STDOUT)
    try:
        import socket  # noqa: PLC0415

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_for(lambda: listening() or not child.alive(), 15, 0.05, "pproxy listening")
        yield port
    finally:
        child.stop(timeout=5)
        os.unlink(log.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    rt = sub.add_parser("roundtrip")
    rt.add_argument("--commands", type=int, default=1000)
    rt.add_argument("--sessions", type=int, default=10)
    rt.add_argument("--no-sqs-only-baseline", dest="sqs_only_baseline", action="store_false",
                    help="skip the pass with the doorbell trigger off")
    fo = sub.add_parser("failover")
    fo.add_argument("--sessions", type=int, default=20)
    fo.add_argument("--heartbeat", default="1s")  # the settings' defaults
    fo.add_argument("--ttl", default="15s")
    mem = sub.add_parser("memory")
    mem.add_argument("--driver", choices=["emulator", "neonize", "both"], default="both")
    mem.add_argument("--counts", default="0,100,1000")
    args = parser.parse_args()
    {"roundtrip": roundtrip, "failover": failover, "memory": memory}[args.what](args)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    main()
