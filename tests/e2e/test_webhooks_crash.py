"""Crash-only: kill the dispatcher (the bridge process) mid-batch; after a restart every event
is delivered (duplicates allowed, always with the same webhook-id)."""
from __future__ import annotations

import sys

from devstack import PROJECT_ROOT
from devstack.processes import start_child
from tests.support.webhook_receiver import Receiver, wait_until

EVENTS = 60


def test_kill_the_dispatcher_mid_batch_and_restart(stack, container, api, make_session, db):
    receiver = Receiver()
    sqs, url = container.sqs, container.queues.events_url
    before = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"]
    # a killed Lambda's batch comes back after the visibility timeout: 4 s instead of 6 min here
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "4"})
    env = {**stack.env, "WEBHOOK_RETRY_SCHEDULE": "1s,2s,3s", "WEBHOOK_RETRY_COUNT": "3",
           "WEBHOOK_TIMEOUT": "5s", "LOG_LEVEL": "WARNING"}
    bridge = None
    try:
        receiver.set_behaviour("/crash", lambda n: (200, {}, 0.15))  # slow enough to be caught mid-batch
        created = make_session(webhook={"url": receiver.url("/crash"), "events": ["message.*"]})
        receiver.set_secrets("/crash", created["webhook_secret"])
        bridge = start_child("bridge-1", [sys.executable, "-m", "devstack", "bridge"], env, str(PROJECT_ROOT))
        ids = [container.events.publish(created["session_id"], "message.received", {"n": i})["id"]
               for i in range(EVENTS)]
        receiver.wait_for(lambda: len(receiver.on("/crash")) >= 12, 60, "the first deliveries")
        bridge.kill()  # SIGKILL, mid-batch: no clean-up runs
        killed_at = len(receiver.on("/crash"))
        assert killed_at < EVENTS, "the bridge finished before it could be killed"
        bridge = start_child("bridge-2", [sys.executable, "-m", "devstack", "bridge"], env, str(PROJECT_ROOT))
        receiver.wait_for(lambda: set(ids) <= {r.webhook_id for r in receiver.on("/crash")}, 90,
                          "every event after the restart")
        hits = receiver.on("/crash")
        assert all(h.verified for h in hits), [h.verify_error for h in hits if not h.verified][:3]
        for hit in hits:  # a duplicate is the same event with the same webhook-id
            assert hit.json["id"] == hit.webhook_id
        print(f"killed after {killed_at} requests; {len(hits)} requests for {EVENTS} events "
              f"({len(hits) - len(set(h.webhook_id for h in hits))} duplicates)")
        wait_until(lambda: _statuses(db, ids) == {"succeeded": EVENTS}, 30, "every delivery row to succeed")
    finally:
        if bridge is not None:
            bridge.stop()
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": before["VisibilityTimeout"]})
        receiver.close()


def _statuses(db, ids):
    with db.connection() as conn:
        rows = conn.execute("SELECT status, count(*) AS n FROM webhook_deliveries WHERE event_id = ANY(%s::uuid[]) "
                            "GROUP BY status", (ids,)).fetchall()
    return {r["status"]: r["n"] for r in rows}
