"""Messages API benchmark: how many text messages the API accepts per second, and how
long a message takes from the API call to the driver (emulator), each against a floor
measured in the same run.

    .venv/bin/python bench/messages_api.py [--messages 2000] [--workers 1,2] [--rate 40] [--latency-messages 600]

accepted/s: W worker processes (Lambda runs one request per process, so concurrency is
  processes, not threads) each POST `/sessions/{id}/messages` text messages (202: the
  command row + the SQS FIFO send) through the real app in-process (`chalice.test.Client`,
  no HTTP server in the way) as fast as they can, each on its own session.
  Floor: the same W processes doing only what cannot be avoided, one SQS SendMessage to
  a FIFO queue like a runner's command queue per message. Ratio = API / floor.
  The runner is paused (SIGSTOP) for both the floor and the API, so both are measured
  under the same condition (neither shares the 2 cores with it); resumed, it drains the backlog: the runner's rate (one emulator runner, the
  sessions in parallel, each session's commands in order) is printed as well.
API->driver: one client sends at a fixed rate (--rate per second, spread over the
  sessions); for each message, the time from just before the POST to the moment the
  emulator's outbox received it (`received_at`). Floor: the same rate through a bare SQS
  FIFO queue, send -> long-poll receive, with the runner's poll settings.

Uses its own database and queue prefix, reuses a LocalStack on 127.0.0.1:4566 (or starts
one), and removes what it created.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.runner_bench import Bench, percentile, say, wait_for  # noqa: E402

TO = "5511777770000"


# -- worker processes -------------------------------------------------------------------
def _worker(mode: str, env: dict[str, str], session: dict[str, str], count: int, start: "multiprocessing.Event",
            results: "multiprocessing.Queue") -> None:
    os.environ.update(env)
    latencies: list[float] = []
    if mode == "api":
        from chalice.test import Client

        import app as app_module

        headers = {"Authorization": f"Bearer {session['api_key']}", "Content-Type": "application/json"}
        path = f"/sessions/{session['session_id']}/messages"
        with Client(app_module.app, stage_name="local") as client:
            def call(n: int) -> None:
                response = client.http.post(path, headers=headers,
                                            body=json.dumps({"to": TO, "type": "text", "text": f"w{n}"}))
                if response.status_code != 202:
                    raise SystemExit(f"API answered {response.status_code}: {response.body[:200]!r}")

            call(-1)  # warm-up: pool, queue URL cache, models
            latencies = _run(call, count, start)
    else:
        from chalicelib.bootstrap import Container
        from chalicelib.config import load_settings

        container = Container(load_settings(env))
        sqs, url = container.sqs, env["BENCH_FLOOR_QUEUE_URL"]

        def call(n: int) -> None:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"probe": n}),
                             MessageGroupId=f"floor-{session['session_id']}",
                             MessageDeduplicationId=f"{os.getpid()}-{n}-{time.monotonic_ns()}")

        call(-1)
        latencies = _run(call, count, start)
    results.put(latencies)


def _run(call, count: int, start) -> list[float]:
    start.wait()
    latencies = []
    for n in range(count):
        began = time.perf_counter()
        call(n)
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def accepted_per_second(bench: Bench, sessions: list[dict[str, str]], mode: str, workers: int,
                        total: int) -> tuple[float, list[float]]:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    per = total // workers
    processes = [context.Process(target=_worker, args=(mode, bench.stack.env, sessions[i], per, start, results))
                 for i in range(workers)]
    for process in processes:
        process.start()
    time.sleep(3.0)  # let every worker import and warm up before the common start
    began = time.perf_counter()
    start.set()
    latencies: list[float] = []
    for _ in processes:
        latencies.extend(results.get(timeout=600))
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join(timeout=30)
        if process.exitcode != 0:
            raise SystemExit(f"a {mode} worker failed (exit {process.exitcode})")
    return len(latencies) / elapsed, latencies


def queued_commands(bench: Bench) -> int:
    with bench.container.db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM commands WHERE status IN ('queued', 'running')"
                            ).fetchone()["n"]


def floor_queue(bench: Bench, suffix: str) -> str:
    name = f"{bench.container.settings.queue_prefix}-{suffix}.fifo"
    return bench.container.sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]


# -- latency ----------------------------------------------------------------------------
def api_to_driver(bench: Bench, sessions: list[dict[str, str]], rate: float, count: int) -> list[float]:
    from chalice.test import Client

    os.environ.update(bench.stack.env)
    import app as app_module

    sent_at: dict[str, float] = {}
    interval = 1.0 / rate
    with Client(app_module.app, stage_name="local") as client:
        next_at = time.perf_counter()
        for n in range(count):
            session = sessions[n % len(sessions)]
            text = f"lat-{n}"
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)  # pacing the load generator, not synchronisation
            next_at += interval
            sent_at[text] = time.time()
            response = client.http.post(
                f"/sessions/{session['session_id']}/messages",
                headers={"Authorization": f"Bearer {session['api_key']}", "Content-Type": "application/json"},
                body=json.dumps({"to": TO, "type": "text", "text": text}))
            if response.status_code != 202:
                raise SystemExit(f"API answered {response.status_code}")

    def received() -> dict[str, float] | None:
        seen: dict[str, float] = {}
        for session in sessions:
            _, outbox = bench_emulator_get(bench, f"/emulator/sessions/{session['session_id']}/outbox")
            for message in outbox["messages"]:
                if message.get("text") in sent_at:
                    seen[message["text"]] = message["received_at"]
        return seen if len(seen) == len(sent_at) else None

    seen = wait_for(received, 120, 0.2, "every message at the driver")
    return [(seen[text] - sent_at[text]) * 1000 for text in sent_at]


def bench_emulator_get(bench: Bench, path: str):
    import urllib.request

    port = bench.runners["bench-msg"][1]
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"X-Emulator-Token": bench.stack.env["EMULATOR_TOKEN"]})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def sqs_floor_latency(bench: Bench, rate: float, count: int) -> list[float]:
    """Send -> receive through a bare FIFO queue at the same rate, receiving as the runner
    does (long poll, up to 10 messages)."""
    sqs = bench.container.sqs
    url = floor_queue(bench, "latency-floor")
    latencies: list[float] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set() or len(latencies) < count:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)
            now = time.time()
            for message in answer.get("Messages", []):
                latencies.append((now - json.loads(message["Body"])["t"]) * 1000)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            if len(latencies) >= count:
                return

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    try:
        interval, next_at = 1.0 / rate, time.perf_counter()
        for n in range(count):
            now = time.perf_counter()
            if now < next_at:
                time.sleep(next_at - now)  # pacing the load generator
            next_at += interval
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"t": time.time()}),
                             MessageGroupId=f"g{n % 4}", MessageDeduplicationId=str(n))
        done.set()
        receiver.join(timeout=60)
    finally:
        sqs.delete_queue(QueueUrl=url)
    return latencies


def line(name: str, values: list[float]) -> str:
    return (f"{name:<44} p50 {statistics.median(values):7.1f} ms  p90 {percentile(values, 90):7.1f} ms  "
            f"p99 {percentile(values, 99):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages per accepted/s measurement")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure")
    parser.add_argument("--rate", type=float, default=40.0, help="messages per second in the latency phase")
    parser.add_argument("--latency-messages", type=int, default=600)
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]

    with Bench(RUNNER_HEARTBEAT_INTERVAL="5s", RUNNER_LEASE_TTL="10m") as bench:
        bench.start_runner("bench-msg")
        from chalice.test import Client

        os.environ.update(bench.stack.env)
        import app as app_module

        admin = {"Authorization": f"Bearer {bench.stack.env['ADMIN_API_KEY']}", "Content-Type": "application/json"}
        sessions = []
        with Client(app_module.app, stage_name="local") as client:
            for i in range(max(max(worker_counts), 4)):
                created = client.http.post("/sessions", headers=admin,
                                           body=json.dumps({"name": f"bench {i}"})).json_body
                sessions.append({"session_id": created["session_id"], "api_key": created["api_key"]})
        ids = [s["session_id"] for s in sessions]
        bench.pair_directly(ids)
        wait_for(lambda: all(s == "authenticated" for s, _ in bench.statuses(ids).values()), 60, 0.1,
                 "sessions restored")

        say(f"# accepted per second: {args.messages} text messages per measurement, POST -> 202")
        bench.stack.env["BENCH_FLOOR_QUEUE_URL"] = floor_queue(bench, "accept-floor")
        runner_pid = bench.runners["bench-msg"][0].process.pid
        for workers in worker_counts:
            # floor and API under the same condition: the runner paused for both (its lease
            # outlives the pause: TTL 10m), so neither competes with it for the 2 cores
            os.killpg(runner_pid, signal.SIGSTOP)
            try:
                floor_rate, floor_lat = accepted_per_second(bench, sessions, "sqs", workers, args.messages)
                api_rate, api_lat = accepted_per_second(bench, sessions, "api", workers, args.messages)
            finally:
                os.killpg(runner_pid, signal.SIGCONT)
            began = time.perf_counter()
            wait_for(lambda: queued_commands(bench) == 0, 600, 0.2, "the runner drains the commands")
            drained = time.perf_counter() - began
            say(f"{workers} worker process(es): API {api_rate:6.0f} msgs/s accepted, floor (SQS SendMessage only) "
                f"{floor_rate:6.0f}/s, ratio {api_rate / floor_rate:.2f}; then the runner drained the backlog in "
                f"{drained:.1f} s ({len(api_lat) / drained:.0f} msgs/s to the driver)")
            say("  " + line("POST /messages (202)", api_lat))
            say("  " + line("SQS SendMessage (floor)", floor_lat))

        say(f"# API -> driver: {args.latency_messages} text messages at {args.rate:g}/s over {len(sessions)} sessions")
        floor = sqs_floor_latency(bench, args.rate, args.latency_messages)
        measured = api_to_driver(bench, sessions, args.rate, args.latency_messages)
        say(line("POST -> emulator outbox", measured))
        say(line("SQS FIFO send -> receive (floor)", floor))
        say(f"ratio p50 x{statistics.median(measured) / statistics.median(floor):.1f}, "
            f"p99 x{percentile(measured, 99) / percentile(floor, 99):.1f}")
        bench.container.sqs.delete_queue(QueueUrl=bench.stack.env["BENCH_FLOOR_QUEUE_URL"])


if __name__ == "__main__":
    main()
