"""Send pacing benchmark: the rate sends reach WhatsApp (the emulator) at, against the
`send_rate` set, for several sessions at once.

    .venv/bin/python bench/pacing.py [--sessions 5] [--messages 200] [--rate 300]

Each paced session gets `send_rate` through the sessions service (as PUT /sessions/{id}
does) and `--messages` sends recorded the API's way (CommandOutbox.record) and handed to the
session's SQS FIFO group in batches; all sessions run together on one emulator runner. The figure per
session is the achieved rate from the emulator's own timestamps (first to last message),
the smallest gap between two messages, and whether every message arrived once, in order.
Baseline, same run: one unpaced session (send_rate null) sending the same number: the
rate the pipeline reaches without pacing, which must be far above the configured one for
the paced figure to measure the pacer rather than the pipeline.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.runner_bench import Bench, say, wait_for  # noqa: E402
from chalicelib.schemas.sessions import UpdateSessionRequest  # noqa: E402


def outbox(bench: Bench, runner_id: str, sid: str) -> list[dict]:
    port = bench.runners[runner_id][1]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/emulator/sessions/{sid}/outbox",
                                     headers={"X-Emulator-Token": bench.stack.env["EMULATOR_TOKEN"]})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())["messages"]


def send_all(bench: Bench, ids: list[str], count: int) -> dict[str, list[str]]:
    """Record every send (one autocommit insert each, as the API does), then hand them to SQS
    in batches of ten per session, in order: a bulk arriving at once, so the figure is the
    runner's pace, not how fast this script can post."""
    outbox_ = bench.container.commands
    texts = {sid: [f"{sid} {n:05d}" for n in range(count)] for sid in ids}
    rows: dict[str, list[dict]] = {sid: [] for sid in ids}
    with bench.container.db.connection() as conn:
        for n in range(count):
            for sid in ids:
                row, _ = outbox_.record(conn, sid, "send_message", {"to": "5511777770000", "type": "text",
                                                                    "text": texts[sid][n]})
                rows[sid].append(row)

    def hand_over(sid: str) -> None:
        url = bench.container.commands.queue_url_for_session(sid)  # the holder's queue (placement)
        for start in range(0, count, 10):
            entries = [{"Id": str(i), "MessageGroupId": sid, "MessageDeduplicationId": str(row["id"]),
                        "MessageBody": json.dumps({"command_id": str(row["id"]), "session_id": sid,
                                                   "type": "send_message"})}
                       for i, row in enumerate(rows[sid][start:start + 10])]
            bench.container.sqs.send_message_batch(QueueUrl=url, Entries=entries)

    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(hand_over, ids))
    return texts


def measure(bench: Bench, runner_id: str, texts: dict[str, list[str]], timeout: float) -> dict[str, dict]:
    count = len(next(iter(texts.values())))
    wait_for(lambda: all(len(outbox(bench, runner_id, sid)) >= count for sid in texts), timeout, 0.5,
             "every message at the emulator")
    figures = {}
    for sid, expected in texts.items():
        messages = outbox(bench, runner_id, sid)
        stamps = [m["received_at"] for m in messages]
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        span = stamps[-1] - stamps[0]
        figures[sid] = {"in_order_once": [m["text"] for m in messages] == expected,
                        "rate_per_minute": (len(stamps) - 1) / span * 60 if span else float("inf"),
                        "min_gap": min(gaps), "span": span}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=int, default=300, help="send_rate, messages a minute (1-600)")
    args = parser.parse_args()
    with Bench() as bench:
        bench.start_runner("bench-pacing")
        baseline = bench.create_sessions(1)
        paced = bench.create_sessions(args.sessions)
        for sid in paced:
            bench.container.sessions.update(sid, UpdateSessionRequest(send_rate=args.rate))
        bench.pair_directly(baseline + paced)
        wait_for(lambda: all(s == "authenticated" for s, _ in bench.statuses(baseline + paced).values()), 60, 0.1,
                 "sessions restored")

        started = time.monotonic()
        unpaced = measure(bench, "bench-pacing", send_all(bench, baseline, args.messages), 300)[baseline[0]]
        say(f"baseline (same run, send_rate null): {args.messages} sends reached the emulator at "
            f"{unpaced['rate_per_minute']:.0f}/min (span {unpaced['span']:.1f} s, "
            f"in order once: {unpaced['in_order_once']}) [{time.monotonic() - started:.1f} s]")

        started = time.monotonic()
        texts = send_all(bench, paced, args.messages)
        enqueued = time.monotonic() - started
        expected_span = (args.messages - 1) * 60 / args.rate
        figures = measure(bench, "bench-pacing", texts, expected_span * 2 + 120)
        rates = [f["rate_per_minute"] for f in figures.values()]
        say(f"paced: {args.sessions} sessions x {args.messages} sends at send_rate={args.rate}/min, all enqueued in "
            f"{enqueued:.1f} s; expected span {expected_span:.1f} s")
        for sid, f in figures.items():
            say(f"  {sid}: achieved {f['rate_per_minute']:.1f}/min (configured {args.rate}), span {f['span']:.1f} s, "
                f"min gap {f['min_gap'] * 1000:.0f} ms (interval {60000 / args.rate:.0f} ms), "
                f"in order once: {f['in_order_once']}")
        say(f"achieved/configured: median {statistics.median(rates) / args.rate:.3f}, "
            f"min {min(rates) / args.rate:.3f}, max {max(rates) / args.rate:.3f}; "
            f"baseline/configured {unpaced['rate_per_minute'] / args.rate:.1f}x; "
            f"all in order once: {all(f['in_order_once'] for f in figures.values())}")


if __name__ == "__main__":
    main()
