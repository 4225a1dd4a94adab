"""Webhook building blocks: signatures checked by `standardwebhooks`, retry policy, patterns, breaker."""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from chalicelib.services.sessions import generate_webhook_secret
from chalicelib.webhooks import breaker, retry
from chalicelib.webhooks.dispatcher import _parse, delivery_id_for, pattern_matches
from chalicelib.webhooks.signing import encode_body, secret_key, signature_headers
from chalicelib.netguard.addresses import address_problem


def test_signatures_verify_with_the_standardwebhooks_library():
    secret = generate_webhook_secret()
    body = encode_body({"id": "e1", "event": "message.received", "data": {"text": "olá ✓"}})
    headers = signature_headers([secret], "e1", body)
    assert Webhook(secret).verify(body, headers)["data"]["text"] == "olá ✓"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_webhook_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    # the library's own signature equals ours
    ts = int(time.time())
    ours = signature_headers([secret], "e1", body, timestamp=ts)["webhook-signature"]
    assert ours == Webhook(secret).sign("e1", datetime.fromtimestamp(ts, tz=timezone.utc), body.decode())


def test_two_secrets_give_two_signatures_either_verifies():
    old, new = generate_webhook_secret(), generate_webhook_secret()
    body = b'{"id":"x"}'
    headers = signature_headers([new, old], "x", body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)


def test_secret_key_forms():
    raw = b"0123456789abcdef0123456789abcdef"
    assert secret_key("whsec_" + base64.b64encode(raw).decode()) == raw
    assert secret_key(base64.b64encode(raw).decode()) == raw
    assert secret_key("not base64 at all!!") == b"not base64 at all!!"


def test_classification():
    assert retry.classify(200) == retry.SUCCEEDED and retry.classify(204) == retry.SUCCEEDED
    assert retry.classify(410) == retry.DISABLED
    for status in (None, 301, 302, 429, 500, 502, 503, 504):
        assert retry.classify(status) == retry.RETRY, status
    for status in (400, 401, 403, 404, 408, 413, 422):
        assert retry.classify(status) == retry.FAILED, status


def test_retry_after_seconds_and_dates():
    now = time.time()
    assert retry.parse_retry_after("7", now) == 7.0
    when = datetime.fromtimestamp(now, tz=timezone.utc) + timedelta(seconds=90)
    assert 88 <= retry.parse_retry_after(format_datetime(when, usegmt=True), now) <= 91
    assert retry.parse_retry_after("soon", now) is None and retry.parse_retry_after(None, now) is None
    assert retry.parse_retry_after("999999999", now) == retry.MAX_RETRY_AFTER
    assert retry.parse_retry_after("-5", now) == 0.0


def test_retry_after_is_the_delay_exactly():
    policy = retry.RetryPolicy.from_settings((1.0, 3.0, 6.0), 3)
    assert policy.next_delay(1, retry_after=4.0, rand=lambda a, b: b) == 4.0  # no jitter on top, not the 1 s
    assert policy.next_delay(2, retry_after=0.0) == 0.0
    assert policy.next_delay(4, retry_after=4.0) is None  # the schedule still ends the retries


def test_policy_truncates_and_jitters():
    svix = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    policy = retry.RetryPolicy.from_settings(svix, 3)
    assert policy.schedule == (5.0, 300.0, 1800.0) and policy.retries == 3
    assert retry.RetryPolicy.from_settings((1.0, 2.0), 4).schedule == (1.0, 2.0, 2.0, 2.0)
    assert retry.RetryPolicy.from_settings(svix, 0).next_delay(1) is None
    for _ in range(200):
        delay = policy.next_delay(2)
        assert 240.0 <= delay <= 360.0
    assert policy.next_delay(4) is None  # exhausted after 3 retries
    assert policy.next_delay(1, retry_after=42.0) == 42.0


def test_patterns():
    assert pattern_matches([], "session.connected")
    assert pattern_matches(["message.*"], "message.received")
    assert not pattern_matches(["message.*"], "session.connected")
    assert not pattern_matches(["message.*"], "messages.x")
    assert pattern_matches(["session.connected", "call.*"], "session.connected")
    assert pattern_matches(["*"], "group.update")


def test_breaker_decisions():
    config = breaker.BreakerConfig(threshold=3, cooldown=30.0, probe_timeout=40.0)
    assert breaker.decide(None, config) == (breaker.GO, 0.0)
    assert breaker.decide({"state": "closed"}, config)[0] == breaker.GO
    assert breaker.decide({"state": "disabled"}, config)[0] == breaker.DISABLED
    decision, wait = breaker.decide({"state": "open", "open_for": 10.0}, config)
    assert decision == breaker.DEFER and wait == pytest.approx(20.0)
    assert breaker.decide({"state": "open", "open_for": 31.0}, config)[0] == breaker.PROBE
    assert breaker.decide({"state": "half_open", "probing_for": 1.0}, config)[0] == breaker.DEFER
    assert breaker.decide({"state": "half_open", "probing_for": 41.0}, config)[0] == breaker.PROBE


def test_address_classes():
    for address in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.1.1", "::1", "fe80::1",
                    "fc00::1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1"):
        assert address_problem(address, allow_private=False), address
        assert address_problem(address, allow_private=True) is None, address
    for address in ("169.254.169.254", "fd00:ec2::254"):
        assert address_problem(address, allow_private=True)
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert address_problem(address, allow_private=False) is None


def test_message_shapes():
    assert _parse({"body": "nope"})[0] == "poison"
    assert _parse({"body": "[1]"})[0] == "poison"
    assert _parse({"body": '{"id": "not-a-uuid", "session_id": "s", "event": "e"}'})[0] == "poison"
    assert _parse({"body": '{"type": "webhook.delivery", "delivery_id": "x", "attempt": 1}'})[0] == "poison"
    good = delivery_id_for("6f1c1f4e-8d3a-4b8e-9f61-3b7f0d2a9c55", "http://h/")
    assert _parse({"body": f'{{"type": "webhook.delivery", "delivery_id": "{good}", "attempt": 2}}'})[0] == "delivery"
    assert delivery_id_for("e", "u") == delivery_id_for("e", "u") != delivery_id_for("e", "v")


def test_unresolvable_hosts_pass_configuration_but_not_delivery(monkeypatch):
    import socket

    from chalicelib.netguard.resolve import NetPolicy, Refused

    def nxdomain(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", nxdomain)
    NetPolicy().check_url("https://not-yet.example/hook", unresolvable_ok=True)
    with pytest.raises(Refused):
        NetPolicy().check_url("https://not-yet.example/hook")
