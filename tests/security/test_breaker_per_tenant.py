"""Issue 11, finding 15 (the circuit breaker): was it keyed by URL across tenants? It was.

Session A could point its webhook at session B's URL, whose receiver refuses A's signatures,
and so open the breaker that parks B's deliveries; and a redeliver by A re-enabled an
endpoint that B's receiver had disabled with HTTP 410. The breaker is now per (session row,
URL): each tenant's failures and redelivers move only its own breaker."""
from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.webhooks.breaker import BreakerConfig
from tests.conftest import session_headers
from tests.support.webhook_receiver import wait_until


@pytest.fixture
def container(settings):
    instance = Container(dataclasses.replace(settings, webhook_retry_schedule=(30.0,), webhook_retry_count=1,
                                             webhook_timeout=2.0))
    reset_container(instance)
    instance.webhook_dispatcher.breaker = BreakerConfig(threshold=2, cooldown=60.0, probe_timeout=60.0)
    yield instance
    reset_container(None)


def _delivery(db, event_id):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM webhook_deliveries WHERE event_id = %s", (event_id,)).fetchone()


def _states(db, url):
    with db.connection() as conn:
        return [r["state"] for r in conn.execute("SELECT state FROM webhook_endpoints WHERE url = %s",
                                                 (url,)).fetchall()]


def _session(make_session, receiver, path):
    created = make_session(webhook={"url": receiver.url(path), "events": ["message.*"]})
    receiver.set_secrets(path, created["webhook_secret"])
    return created


def test_one_tenant_cannot_open_another_tenants_breaker(container, make_session, receiver, bridge, db):
    # B's receiver refuses what is not signed with B's secret (as any careful receiver does)
    b_refuses = {"on": True}
    receiver.set_behaviour("/b", lambda n: (500, {}, 0) if b_refuses["on"] else (200, {}, 0))
    attacker = _session(make_session, receiver, "/b")   # A points its webhook at B's URL
    victim = _session(make_session, receiver, "/b")
    for i in range(3):  # A's deliveries fail until A's breaker opens
        container.events.publish(attacker["session_id"], "message.received", {"n": i})
    wait_until(lambda: "open" in _states(db, receiver.url("/b")), 20, "the attacker's breaker to open")
    b_refuses["on"] = False  # B's own deliveries are good
    container.webhook_dispatcher._endpoints.clear()
    event = container.events.publish(victim["session_id"], "message.received", {"order": 42})
    row = wait_until(lambda: (r := _delivery(db, event["id"])) and r["status"] != "pending" and r, 20,
                     "the victim's delivery")
    assert row["status"] == "succeeded", f"the victim's delivery was {row['status']}: {row['error']}"


def test_a_redeliver_never_re_enables_another_tenants_disabled_endpoint(container, api, make_session, receiver,
                                                                       bridge, db):
    receiver.set_behaviour("/gone", lambda n: (410, {}, 0))
    victim = _session(make_session, receiver, "/gone")
    first = container.events.publish(victim["session_id"], "message.received", {"n": 1})
    wait_until(lambda: (r := _delivery(db, first["id"])) and r["status"] == "failed", 20, "410 to fail it")
    assert _states(db, receiver.url("/gone")) == ["disabled"]

    attacker = _session(make_session, receiver, "/gone")
    mine = container.events.publish(attacker["session_id"], "message.received", {"n": 2})
    row = wait_until(lambda: (r := _delivery(db, mine["id"])) and r["status"] == "failed" and r, 20,
                     "the attacker's delivery to fail")
    answer = api.post(f"/sessions/{attacker['session_id']}/webhook/deliveries/{row['id']}/redeliver",
                      headers=session_headers(attacker), body=json.dumps({}))
    assert answer.status_code == 202, answer.body
    assert "disabled" in _states(db, receiver.url("/gone")), "the victim's endpoint was re-enabled by another tenant"
