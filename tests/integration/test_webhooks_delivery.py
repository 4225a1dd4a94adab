"""Webhook delivery end to end: events queue on LocalStack -> SQS bridge -> dispatcher -> a real
HTTP receiver that verifies every signature with the `standardwebhooks` library."""
from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.webhooks.breaker import BreakerConfig
from tests.conftest import session_headers
from tests.support.webhook_receiver import wait_until

SCHEDULE = (1.0, 3.0, 6.0)  # WEBHOOK_RETRY_SCHEDULE for these tests: 3 retries, growing


@pytest.fixture
def container(settings):
    """Short retry schedule and timeout; overrides conftest's `container` for this module."""
    instance = Container(dataclasses.replace(settings, webhook_retry_schedule=SCHEDULE, webhook_retry_count=3,
                                             webhook_timeout=2.0))
    reset_container(instance)
    instance.webhook_dispatcher.breaker = BreakerConfig(threshold=100, cooldown=2.0, probe_timeout=10.0)
    yield instance
    reset_container(None)


def _session(make_session, receiver, path, **webhook):
    created = make_session(webhook={"url": receiver.url(path), **webhook})
    assert created["webhook_secret"].startswith("whsec_")
    receiver.set_secrets(path, created["webhook_secret"])
    return created


def _delivery(db, event_id):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM webhook_deliveries WHERE event_id = %s", (event_id,)).fetchone()


def _attempts(db, event_id):
    with db.connection() as conn:
        return conn.execute(
            "SELECT a.* FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
            "WHERE d.event_id = %s ORDER BY a.attempt", (event_id,)).fetchall()


def test_events_arrive_signed_and_verifiable(container, api, make_session, receiver, bridge, db):
    created = _session(make_session, receiver, "/a")
    sid = created["session_id"]
    envelope = container.events.publish(sid, "message.received", {"from": "5511999999999", "text": "oi"})
    receiver.wait_for(lambda: any(r.webhook_id == envelope["id"] for r in receiver.on("/a")), 20,
                      "message.received at the receiver")
    received = {r.json["event"]: r for r in receiver.on("/a")}
    assert set(received) >= {"session.created", "message.received"}
    for item in receiver.on("/a"):
        assert item.verified, item.verify_error
        assert item.headers["content-type"] == "application/json"
        assert item.headers["webhook-signature"].startswith("v1,")
        assert abs(int(item.headers["webhook-timestamp"]) - time.time()) < 60
    body = received["message.received"].json
    assert body == envelope  # the envelope, byte for byte the event that was published
    assert set(body) == {"id", "session_id", "event", "timestamp", "data", "metadata"}
    assert body["metadata"]["sequence"] > received["session.created"].json["metadata"]["sequence"]
    row = wait_until(lambda: (r := _delivery(db, envelope["id"])) and r["status"] == "succeeded" and r, 10,
                     "the delivery row")
    assert row["attempt"] == 1 and row["http_status"] == 200 and row["latency_ms"] is not None
    assert row["response_excerpt"] == '{"ok":true}'
    listed = api.get(f"/sessions/{sid}/webhook/deliveries?event=message.*", headers=session_headers(created))
    assert listed.status_code == 200, listed.body
    assert [d["event_id"] for d in listed.json_body["deliveries"]] == [envelope["id"]]
    one = api.get(f"/sessions/{sid}/webhook/deliveries/{row['id']}", headers=session_headers(created))
    assert one.status_code == 200 and one.json_body["attempts"][0]["outcome"] == "succeeded"


def test_three_failures_then_success_with_growing_delays(container, api, make_session, receiver, bridge, db):
    receiver.set_behaviour("/flaky", lambda n: (500, {}, 0) if n <= 3 else (200, {}, 0))
    created = _session(make_session, receiver, "/flaky", events=["message.*"])
    envelope = container.events.publish(created["session_id"], "message.received", {"text": "retry me"})
    receiver.wait_for(lambda: len(receiver.on("/flaky")) >= 4, 40, "4 attempts")
    row = wait_until(lambda: (r := _delivery(db, envelope["id"])) and r["status"] == "succeeded" and r, 10,
                     "the delivery to succeed")
    hits = receiver.on("/flaky")
    assert [h.status for h in hits] == [500, 500, 500, 200]
    assert {h.webhook_id for h in hits} == {envelope["id"]}  # one id across retries
    assert all(h.verified for h in hits)
    gaps = [b.at - a.at for a, b in zip(hits, hits[1:])]
    assert gaps[0] >= SCHEDULE[0] * 0.8 and gaps[0] < gaps[1] < gaps[2], gaps
    attempts = _attempts(db, envelope["id"])
    assert [a["outcome"] for a in attempts] == ["retry", "retry", "retry", "succeeded"]
    assert [a["http_status"] for a in attempts] == [500, 500, 500, 200]
    assert row["attempt"] == 4
    time.sleep(0.5)
    assert len(receiver.on("/flaky")) == 4  # exactly one success, nothing after it


def test_always_failing_ends_failed_then_redeliver_succeeds(container, api, make_session, receiver, bridge, db):
    down = {"on": True}
    receiver.set_behaviour("/down", lambda n: (503, {}, 0) if down["on"] else (200, {}, 0))
    created = _session(make_session, receiver, "/down", events=["message.received"])
    sid, headers = created["session_id"], session_headers(created)
    first = container.events.publish(sid, "message.received", {"n": 1})
    second = container.events.publish(sid, "message.received", {"n": 2})
    for envelope in (first, second):
        wait_until(lambda: (r := _delivery(db, envelope["id"])) and r["status"] == "failed", 40,
                   "the delivery to fail")
    assert len(receiver.on("/down")) == 8  # 1 + 3 retries each, then nothing
    failed = api.get(f"/sessions/{sid}/webhook/deliveries?status=failed", headers=headers).json_body
    assert failed["total"] == 2 and all(d["attempt"] == 4 for d in failed["deliveries"])
    assert "gave up after 4 attempt(s)" in failed["deliveries"][0]["error"]

    down["on"] = False
    row = _delivery(db, first["id"])
    answer = api.post(f"/sessions/{sid}/webhook/deliveries/{row['id']}/redeliver", headers=headers)
    assert answer.status_code == 202, answer.body
    wait_until(lambda: _delivery(db, first["id"])["status"] == "succeeded", 20, "the redelivery")
    again = api.post(f"/sessions/{sid}/webhook/deliveries/{row['id']}/redeliver", headers=headers)
    assert again.status_code in (202, 409)
    bulk = api.post(f"/sessions/{sid}/webhook/redeliver", headers=headers, body=json.dumps({"status": "failed"}))
    assert bulk.status_code == 202 and bulk.json_body["count"] == 1, bulk.body
    wait_until(lambda: _delivery(db, second["id"])["status"] == "succeeded", 20, "the bulk redelivery")
    ok = [r for r in receiver.on("/down") if r.status == 200]
    assert {r.webhook_id for r in ok} == {first["id"], second["id"]}
    assert all(r.verified for r in receiver.on("/down"))


def _endpoint(db, url):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM webhook_endpoints WHERE url = %s", (url,)).fetchone()


def test_410_disables_the_endpoint_until_a_redeliver(container, api, make_session, receiver, bridge, db):
    gone = {"on": True}
    receiver.set_behaviour("/gone", lambda n: (410, {}, 0) if gone["on"] else (200, {}, 0))
    created = _session(make_session, receiver, "/gone", events=["message.*"])
    sid, headers = created["session_id"], session_headers(created)
    first = container.events.publish(sid, "message.received", {"n": 1})
    wait_until(lambda: (r := _delivery(db, first["id"])) and r["status"] == "failed", 20, "410 to fail it")
    assert _endpoint(db, receiver.url("/gone"))["state"] == "disabled"
    assert api.get(f"/sessions/{sid}", headers=headers).json_body["webhook"]["status"] == "disabled"
    container.webhook_dispatcher._endpoints.clear()
    second = container.events.publish(sid, "message.received", {"n": 2})
    row = wait_until(lambda: (r := _delivery(db, second["id"])) and r["status"] == "failed" and r, 20,
                     "the second delivery to be refused")
    assert "endpoint disabled" in row["error"] and row["attempt"] == 0
    assert len(receiver.on("/gone")) == 1  # no request after the 410
    gone["on"] = False
    answer = api.post(f"/sessions/{sid}/webhook/deliveries/{row['id']}/redeliver", headers=headers)
    assert answer.status_code == 202
    wait_until(lambda: _delivery(db, second["id"])["status"] == "succeeded", 20, "redelivery after re-enable")
    assert api.get(f"/sessions/{sid}", headers=headers).json_body["webhook"]["status"] == "active"


def test_retry_after_is_respected(container, api, make_session, receiver, bridge, db):
    receiver.set_behaviour("/busy", lambda n: (429, {"Retry-After": "4"}, 0) if n == 1 else (200, {}, 0))
    created = _session(make_session, receiver, "/busy", events=["message.*"])
    envelope = container.events.publish(created["session_id"], "message.received", {})
    receiver.wait_for(lambda: len(receiver.on("/busy")) >= 2, 30, "the retry")
    first, second = receiver.on("/busy")[:2]
    assert second.at - first.at >= 4.0 - 0.05  # not the 1 s the schedule says
    # (that the delay is exactly Retry-After, not more, is the policy's decision:
    # tests/unit/test_webhooks_units.py::test_retry_after_is_the_delay_exactly; no time window here)
    assert wait_until(lambda: _delivery(db, envelope["id"])["status"] == "succeeded", 10, "success")


def test_filters_a_message_subscription_gets_no_session_events(container, api, make_session, receiver, bridge, db):
    created = _session(make_session, receiver, "/filtered", events=["message.*"])
    sid = created["session_id"]
    container.events.publish(sid, "session.connected", {"jid": "x@s.whatsapp.net"})
    receipt = container.events.publish(sid, "message.receipt", {"type": "read"})
    received = container.events.publish(sid, "message.received", {"text": "hi"})
    receiver.wait_for(lambda: {r.webhook_id for r in receiver.on("/filtered")} >= {receipt["id"], received["id"]},
                      20, "both message events")
    wait_until(lambda: _queue_empty(container), 20, "the events queue to drain")
    events = [r.json["event"] for r in receiver.on("/filtered")]
    assert sorted(events) == ["message.receipt", "message.received"]  # no session.created / connected
    with db.connection() as conn:
        rows = conn.execute("SELECT event FROM webhook_deliveries WHERE session_id = %s", (sid,)).fetchall()
    assert sorted(r["event"] for r in rows) == ["message.receipt", "message.received"]


def _queue_empty(container) -> bool:
    attrs = container.sqs.get_queue_attributes(QueueUrl=container.queues.events_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) == 0


def test_breaker_opens_defers_and_a_probe_closes_it(container, api, make_session, receiver, bridge, db):
    # a cooldown far longer than the test: while it runs, nothing may reach the endpoint
    container.webhook_dispatcher.breaker = BreakerConfig(threshold=2, cooldown=600.0, probe_timeout=10.0)
    down = {"on": True}
    receiver.set_behaviour("/brk", lambda n: (500, {}, 0) if down["on"] else (200, {}, 0))
    created = _session(make_session, receiver, "/brk", events=["message.*"])
    sid, headers = created["session_id"], session_headers(created)
    url = receiver.url("/brk")
    envelopes = [container.events.publish(sid, "message.received", {"n": i}) for i in range(4)]
    wait_until(lambda: (e := _endpoint(db, url)) and e["state"] == "open", 20, "the breaker to open")
    assert api.get(f"/sessions/{sid}", headers=headers).json_body["webhook"]["status"] == "failing"
    stats = api.get(f"/webhooks/sessions/{sid}/stats", headers=headers).json_body
    assert stats["webhook_status"] == "failing" and stats["breakers"][0]["state"] == "open"

    # while open, deliveries wait in the database (parked), not on the queue, and nothing is sent:
    # an event published now is handled (it gets parked) without a request to the endpoint
    def parked(event_id=None):
        with db.connection() as conn:
            return conn.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE session_id = %s AND "
                                "status = 'retrying' AND next_attempt_at IS NULL "
                                "AND (%s::text IS NULL OR event_id = %s)", (sid, event_id, event_id)).fetchone()["n"]

    wait_until(lambda: parked() >= 1, 20, "a parked delivery")
    count = len(receiver.on("/brk"))
    late = container.events.publish(sid, "message.received", {"n": "while open"})
    envelopes.append(late)
    wait_until(lambda: parked(late["id"]) == 1, 20, "the event published while open to be parked")
    assert len(receiver.on("/brk")) == count  # handled, and not sent

    # the cooldown ends (the probe timer fires): one probe, the breaker closes, the parked ones go out
    down["on"] = False
    container.webhook_dispatcher.breaker = BreakerConfig(threshold=2, cooldown=0.0, probe_timeout=10.0)
    endpoint = _endpoint(db, url)
    from chalicelib.webhooks.messages import probe_message, send_delivery_messages

    send_delivery_messages(container.sqs, container.queues.events_url,
                           [probe_message((str(endpoint["session_uid"]), url), 0)])
    for envelope in envelopes:
        wait_until(lambda: (r := _delivery(db, envelope["id"])) and r["status"] == "succeeded", 40,
                   "every event after the probe closed the breaker")
    assert _endpoint(db, url)["state"] == "closed"
    assert api.get(f"/sessions/{sid}", headers=headers).json_body["webhook"]["status"] == "active"
    assert all(r.verified for r in receiver.on("/brk"))


def test_rotated_secret_signs_with_old_and_new(container, api, make_session, receiver, bridge, db):
    created = _session(make_session, receiver, "/rot", events=["message.*"])
    sid, headers = created["session_id"], session_headers(created)
    old = created["webhook_secret"]
    answer = api.post(f"/sessions/{sid}/webhook/rotate-secret", headers=headers)
    assert answer.status_code == 200, answer.body
    new = answer.json_body["webhook_secret"]
    assert new.startswith("whsec_") and new != old
    assert answer.json_body["previous_secret_expires_at"]
    container.webhook_dispatcher.forget_session(sid)
    envelope = container.events.publish(sid, "message.received", {})
    receiver.wait_for(lambda: any(r.webhook_id == envelope["id"] for r in receiver.on("/rot")), 20, "the event")
    item = [r for r in receiver.on("/rot") if r.webhook_id == envelope["id"]][0]
    assert len(item.headers["webhook-signature"].split(" ")) == 2
    from standardwebhooks.webhooks import Webhook

    for secret in (old, new):  # a receiver on either secret accepts it
        Webhook(secret).verify(item.body, item.headers)
    assert "webhook_secret" not in json.dumps(api.get(f"/sessions/{sid}", headers=headers).json_body)


def _dlq_depth(container) -> int:
    attributes = container.sqs.get_queue_attributes(QueueUrl=container.queues.events_dlq_url,
                                                    AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def test_send_to_a_given_url_and_stats(container, api, make_session, receiver, bridge, db, admin_headers):
    created = _session(make_session, receiver, "/main", events=["message.*"])
    sid = created["session_id"]
    receiver.set_secrets("/other", created["webhook_secret"])
    answer = api.post("/webhooks/send", headers=admin_headers, body=json.dumps(
        {"session_id": sid, "event": "webhook.test", "data": {"hello": "world"}, "url": receiver.url("/other")}))
    assert answer.status_code == 202, answer.body
    receiver.wait_for(lambda: len(receiver.on("/other")) == 1, 20, "the test event")
    item = receiver.on("/other")[0]
    assert item.verified and item.json["event"] == "webhook.test" and item.json["data"] == {"hello": "world"}
    assert item.webhook_id == answer.json_body["event_id"]
    forbidden = api.post("/webhooks/send", headers=session_headers(created), body=json.dumps({"session_id": sid}))
    assert forbidden.status_code == 403
    stats = api.get("/webhooks/stats", headers=admin_headers)
    assert stats.status_code == 200, stats.body
    assert stats.json_body["deliveries"].get("succeeded", 0) >= 1 and stats.json_body["queue_depth"] is not None
    # the events DLQ is the suite's, not this test's: the figure is SQS's own count of it
    # (read around the call: nothing in this test adds to it)
    before = _dlq_depth(container)
    reported = api.get("/webhooks/stats", headers=admin_headers).json_body["dlq_depth"]
    after = _dlq_depth(container)
    assert isinstance(reported, int) and min(before, after) <= reported <= max(before, after)
    wait_until(lambda: _delivery(db, item.webhook_id)["status"] == "succeeded", 10, "the row")
    mine = api.get(f"/webhooks/sessions/{sid}/stats", headers=session_headers(created)).json_body
    assert mine["deliveries"] == {"succeeded": 1} and mine["success_rate"] == 1.0 and mine["latency_p50_ms"] >= 0
    other = make_session()
    assert api.get(f"/webhooks/sessions/{sid}/stats", headers=session_headers(other)).status_code == 403
    spec = api.get("/openapi.json").json_body["paths"]
    for path in ("/webhooks/send", "/webhooks/stats", "/webhooks/sessions/{session_id}/stats",
                 "/sessions/{session_id}/webhook/deliveries",
                 "/sessions/{session_id}/webhook/deliveries/{delivery_id}/redeliver",
                 "/sessions/{session_id}/webhook/rotate-secret"):
        assert path in spec


def test_poison_messages_go_to_the_events_dlq_and_ready_reports_it(container, api, receiver, bridge, admin_headers):
    sqs = container.sqs
    sqs.send_message(QueueUrl=container.queues.events_url, MessageBody="this is not json")
    dlq = container.queues.events_dlq_url
    try:
        wait_until(lambda: int(sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"]) >= 1, 20, "the DLQ")
        ready = api.get("/ready", headers=admin_headers)  # which check failed: admin key only
        assert ready.status_code == 503 and "events_dlq" in ready.json_body["failing"]
    finally:
        while True:
            messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if not messages:
                break
            for m in messages:
                sqs.delete_message(QueueUrl=dlq, ReceiptHandle=m["ReceiptHandle"])


def test_a_hanging_endpoint_does_not_hold_up_other_sessions(container, api, make_session, receiver, bridge, db):
    """The slow session's endpoint holds every request until the test lets go, and the
    timeout is longer than the test: the healthy session's events can only arrive if the
    dispatcher keeps delivering while the slow session's slots are all held."""
    dispatcher = container.webhook_dispatcher
    dispatcher.timeout = 120.0  # no attempt to /hang ends by itself while the test runs
    dispatcher.breaker = BreakerConfig(threshold=3, cooldown=600.0, probe_timeout=600.0)
    gate = threading.Event()

    def hang(_n):
        gate.wait(300)
        return 200, {}, 0

    receiver.set_behaviour("/hang", hang)
    slow = _session(make_session, receiver, "/hang", events=["message.*"])
    fast = _session(make_session, receiver, "/fast", events=["message.*"])
    try:
        slow_events = [container.events.publish(slow["session_id"], "message.received", {"n": i})
                       for i in range(20)]
        receiver.wait_for(lambda: receiver.counts.get("/hang", 0) >= 1, 60, "a request held by /hang")
        fast_ids = {container.events.publish(fast["session_id"], "message.received", {"n": i})["id"]
                    for i in range(20)}
        receiver.wait_for(lambda: {r.webhook_id for r in receiver.on("/fast")} >= fast_ids, 60,
                          "every event of the healthy session while /hang holds its requests")
        held = receiver.counts["/hang"]
        assert not gate.is_set() and receiver.on("/hang") == []  # every /hang request still held
    finally:
        gate.set()
    # let go: the held attempts are answered and recorded; every slow event has its delivery row
    receiver.wait_for(lambda: len(receiver.on("/hang")) >= held, 30, "the held requests to be answered")
    for webhook_id in {r.webhook_id for r in receiver.on("/hang")}:
        wait_until(lambda: (r := _delivery(db, webhook_id)) and r["status"] == "succeeded", 30,
                   "the held attempt recorded as delivered")
    with db.connection() as conn:
        rows = conn.execute("SELECT event_id FROM webhook_deliveries WHERE session_id = %s",
                            (slow["session_id"],)).fetchall()
    assert {str(r["event_id"]) for r in rows} == {e["id"] for e in slow_events}  # none lost


def test_session_deleted_is_delivered_after_the_row_is_gone(container, api, admin_headers, make_session,
                                                           receiver, bridge, db):
    created = _session(make_session, receiver, "/gone", events=["session.*"])
    sid = created["session_id"]
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    receiver.wait_for(lambda: any(r.json["event"] == "session.deleted" for r in receiver.on("/gone")), 20,
                      "session.deleted at the receiver")
    deleted = [r for r in receiver.on("/gone") if r.json["event"] == "session.deleted"][0]
    assert deleted.verified, deleted.verify_error  # signed with the deleted session's own secret
    assert deleted.json["session_id"] == sid and deleted.json["data"]["session_id"] == sid


def test_parked_deliveries_older_than_the_retry_schedule_expire_at_the_next_probe(
        container, api, make_session, receiver, bridge, db):
    """A breaker that stays open longer than the whole retry schedule: its parked
    deliveries end `failed` (never sent, never left waiting forever) when the probe timer
    fires."""
    container.webhook_dispatcher.breaker = BreakerConfig(threshold=2, cooldown=600.0, probe_timeout=10.0)
    receiver.set_behaviour("/expire", lambda n: (500, {}, 0))
    created = _session(make_session, receiver, "/expire", events=["message.*"])
    sid, url = created["session_id"], receiver.url("/expire")
    for i in range(2):
        container.events.publish(sid, "message.received", {"n": i})
    wait_until(lambda: (e := _endpoint(db, url)) and e["state"] == "open", 20, "the breaker to open")
    parked = container.events.publish(sid, "message.received", {"n": "parked"})
    wait_until(lambda: (r := _delivery(db, parked["id"])) and r["status"] == "retrying"
               and r["next_attempt_at"] is None, 20, "a parked delivery")
    max_age = container.webhook_dispatcher.policy.max_age
    with db.connection() as conn:  # it has waited longer than the whole retry schedule
        conn.execute("UPDATE webhook_deliveries SET created_at = now() - make_interval(secs => %s) "
                     "WHERE event_id = %s", (max_age + 60, parked["id"]))

    # the probe timer fires (the cooldown is over)
    container.webhook_dispatcher.breaker = BreakerConfig(threshold=2, cooldown=0.0, probe_timeout=10.0)
    from chalicelib.webhooks.messages import probe_message, send_delivery_messages

    send_delivery_messages(container.sqs, container.queues.events_url,
                           [probe_message((str(_endpoint(db, url)["session_uid"]), url), 0)])
    expired = wait_until(lambda: (r := _delivery(db, parked["id"])) and r["status"] == "failed" and r, 30,
                         "the parked delivery to expire")
    assert "retry schedule" in expired["error"]
    assert parked["id"] not in {r.webhook_id for r in receiver.on("/expire")}  # never sent
