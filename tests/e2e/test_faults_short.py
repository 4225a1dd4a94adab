"""Shortened fault scenarios of bench/faults.py (1: a runner SIGKILLed mid-burst, 5: the
webhook receiver down, 3: PostgreSQL stopped hard), each asserting that nothing accepted was
lost: every accepted command sent or visibly failed (counted from the commands table and the
emulator's wire log), every event delivered or visibly failed (the outbox, the receiver's 2xx
answers, the delivery log), every message the emulator handed to a runner written as an
event, and a full recovery within the scale's bound.

The stack is the bench's own (devstack, two runners, `chalice local`, the SQS bridge) with
its own embedded PostgreSQL (scenario 3 stops it: the suite's database is never touched),
its own data dir and queue prefix on the suite's LocalStack, so nothing here depends on
what other tests left in shared queues. Fewer messages and shorter outages than the bench.
"""
from __future__ import annotations

import psycopg
import pytest

from bench.fault_count import ACK_WINDOW
from bench.fault_load import pair_sessions
from bench.fault_receiver import FaultReceiver
from bench.fault_stack import RUNNER_IDS, FaultStack
from bench.faults import Bench, Scale

pytestmark = pytest.mark.slow

SHORT = Scale(sessions=2, send_rate=3, inbound_rate=2, warmup=2, tail=2, burst=20, gap=5, pg_outage=5,
              localstack_outage=5, receiver_outage=8, flaky_for=5, overload_for=5, recovery_timeout=90)
FAST = {"RUNNER_HEARTBEAT_INTERVAL": "0.5s", "RUNNER_LEASE_TTL": "3s", "RUNNER_RECONCILE_INTERVAL": "1s",
        "COMMAND_STALE_AFTER": "1s", "DB_CONNECT_TIMEOUT": "3s", "RECONNECT_BACKOFF_BASE": "200ms",
        "RECONNECT_BACKOFF_MAX": "2s", "WEBHOOK_RETRY_SCHEDULE": "1s,2s,5s,10s,20s,30s,60s"}


@pytest.fixture(scope="module")
def bench(stack):
    faults = FaultStack(localstack_endpoint=stack.env["AWS_ENDPOINT_URL"], extra_env=FAST)
    receiver = FaultReceiver()
    try:
        faults.start()
        yield Bench(faults, receiver, pair_sessions(faults, receiver, SHORT.sessions), SHORT)
    finally:
        receiver.close()
        faults.stop()


def _assert_nothing_lost(row):
    # the one loss allowed is the documented SIGKILL window (bench/fault_count.py ACK_WINDOW):
    # a received message handed to a runner in the second before its SIGKILL; at most what
    # that second's inbound rate could bring
    assert (row.cmd_lost, row.ev_lost, row.inbound_lost - row.inbound_at_kill) == (0, 0, 0), row
    assert row.inbound_at_kill <= SHORT.inbound_rate * ACK_WINDOW + 1, row
    assert row.once + row.twice + row.cmd_failed == row.accepted
    assert row.delivered + row.dlq == row.events
    assert row.recovery_s is not None, f"no full recovery: {row}"


def test_a_runner_killed_mid_burst_loses_nothing(bench):
    row = bench.run(1)
    _assert_nothing_lost(row)
    assert row.accepted >= SHORT.burst and row.events > 0
    assert bench.stack.live_runners() == [RUNNER_IDS[1]]  # the survivor carried it alone
    # the commands of the burst ran on the survivor (the killed runner's shards moved)
    with psycopg.connect(bench.stack.env["DATABASE_URL"]) as conn:
        runners = {r for (r,) in conn.execute(
            "SELECT DISTINCT runner_id FROM commands WHERE type = 'send_message' AND finished_at > "
            "to_timestamp(%s) + interval '15 seconds'", (bench.since,))}
    assert runners <= {RUNNER_IDS[1]}


def test_the_webhook_receiver_down_loses_nothing(bench):
    row = bench.run(5)
    _assert_nothing_lost(row)
    assert row.events > 0 and row.delivered == row.events  # the outage is inside the retry schedule
    with psycopg.connect(bench.stack.env["DATABASE_URL"]) as conn:
        (refused,) = conn.execute("SELECT count(*) FROM webhook_attempts WHERE outcome <> 'succeeded' "
                                  "AND at >= to_timestamp(%s)", (bench.since,)).fetchone()
    assert refused > 0  # deliveries really met the closed port, and were retried


def test_postgresql_stopped_hard_loses_nothing(bench):
    """Issue 16: this run used to leave a command `running` for ever (its send went out, then
    the writes recording it met the dead database and were dropped) and to count received
    messages as lost that the runners still held (written once the database answered).
    The runners' units of it are tests/unit/test_actor_holds.py."""
    row = bench.run(3)
    _assert_nothing_lost(row)
    assert row.inbound_sent > 0 and row.accepted > 0
    with psycopg.connect(bench.stack.env["DATABASE_URL"]) as conn:
        (restarted,) = conn.execute("SELECT pg_postmaster_start_time() > to_timestamp(%s)",
                                    (bench.since,)).fetchone()
    assert restarted  # the database really went down and came back during the run
    assert row.api_5xx > 0  # and the API met it (503 while it was down; the load retried)
