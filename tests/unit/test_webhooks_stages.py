"""The dispatcher's stages alone (issue 12): the transport failure -> outcome mapping by
error type (no message matching), settling an outcome, what a batch says about each
endpoint's breaker, and the delivery row written for an attempt that was not made.
No database, no queue, no socket."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from chalicelib.netguard.http import OutboundError, OutboundRefused, OutboundTimeout, OutboundUnresolvable
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.webhooks import retry
from chalicelib.webhooks.breaker import BreakerConfig
from chalicelib.webhooks.dispatcher import WebhookDispatcher
from chalicelib.webhooks.jobs import Job
from chalicelib.webhooks.outcomes import BreakerTally, OutcomeRecorder, settle
from chalicelib.webhooks.posting import Poster


def _job(**fields) -> Job:
    base = dict(record_id="r", delivery_id="d", event_id="e", session_id="s", session_uid="u", event="x.y",
                url="http://127.0.0.1:9/hook", payload={}, attempt=1, round_attempt=1)
    return Job(**{**base, **fields})


def _poster() -> Poster:
    return Poster(net_policy=NetPolicy(allow_private=True), timeout=2.0, session_concurrency=2, max_workers=1,
                  lock=threading.Lock())


def test_a_refusal_fails_at_once_and_everything_else_is_retried():
    poster = _poster()
    assert poster._failure(OutboundRefused("10.0.0.1 is a private address")) == \
        (retry.REFUSED, "refused by the SSRF guard: 10.0.0.1 is a private address")
    assert poster._failure(OutboundTimeout("no complete answer within 2s")) == \
        (retry.RETRY, "timed out after 2s (total deadline)")
    assert poster._failure(OutboundUnresolvable("no such host")) == (retry.RETRY, "connection failed: no such host")
    assert poster._failure(OutboundError("connection_failed", "connection failed: refused")) == \
        (retry.RETRY, "connection failed: refused")
    assert poster._failure(RuntimeError("boom\nsecond line")) == (retry.RETRY, "RuntimeError: boom")


def test_typed_errors_keep_their_kind_for_callers_that_read_it():
    assert OutboundRefused("x").kind == "refused"
    assert OutboundTimeout("x").kind == "timeout"
    assert isinstance(OutboundRefused("x"), OutboundError)


def test_settle():
    policy = retry.RetryPolicy((5.0,), jitter=0.0)
    ok = _job(outcome=retry.SUCCEEDED, error="old")
    settle(ok, policy)
    assert (ok.status, ok.error) == ("succeeded", None)
    again = _job(outcome=retry.RETRY, error="HTTP 503")
    settle(again, policy)
    assert (again.status, again.delay, again.next_attempt) == ("retrying", 5.0, 2)
    spent = _job(outcome=retry.RETRY, error="HTTP 503", round_attempt=2)
    settle(spent, policy)
    assert (spent.status, spent.error) == ("failed", "HTTP 503; gave up after 2 attempt(s)")
    refused = _job(outcome=retry.REFUSED)
    settle(refused, policy)
    assert refused.status == "failed"
    untouched = _job(status="skipped")
    settle(untouched, policy)
    assert untouched.status == "skipped"


def test_breaker_tally_counts_per_session_endpoint():
    tally = BreakerTally()
    for job in (_job(outcome=retry.RETRY), _job(outcome=retry.RETRY), _job(session_uid="v", outcome=retry.SUCCEEDED),
                _job(session_uid="w", outcome=retry.DISABLED), _job(session_uid="p", outcome=retry.FAILED, probe=True),
                _job(session_uid="q", outcome=retry.FAILED)):
        tally.count(job)
    url = "http://127.0.0.1:9/hook"
    assert tally.failures == {("u", url): 2, ("p", url): 1}  # a failed probe always reopens
    assert tally.successes == {("v", url)}
    assert tally.disabled == {("w", url)}


def test_an_attempt_not_made_is_not_counted_in_the_row():
    recorder = OutcomeRecorder(repo=None, db=None, endpoints=None, sqs=lambda: None, events_queue_url=lambda: "",
                               breaker_config=None, timeout=3.0)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    deferred = recorder._row(_job(attempt=3, round_attempt=2, status="retrying", delay=10.0), now)
    assert (deferred["attempt"], deferred["round_attempt"]) == (2, 1)
    assert deferred["next_attempt_at"] == datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
    running = recorder._row(_job(attempt=3, round_attempt=2, status="delivering", handed_off=True), now)
    assert (running["attempt"], running["next_attempt_at"]) == (3, datetime(2026, 1, 1, 0, 0, 3, tzinfo=timezone.utc))


def test_the_dispatcher_timeout_is_one_value_for_every_stage():
    """WEBHOOK_TIMEOUT set on the dispatcher reaches the POST's deadline and the recorder's
    next-attempt time: it used to change only the watchdog, so a POST still gave up at the
    old 10 s (tests/integration/test_webhooks_delivery.py's hanging endpoint, on a slow CI)."""
    dispatcher = WebhookDispatcher(
        repo=object(), sqs=None, events_queue_url=lambda: "", dlq_url=lambda: "", secret_box=lambda: None,
        policy=retry.RetryPolicy.from_settings((1.0,), 1), breaker_config=BreakerConfig(threshold=5, cooldown=30.0),
        timeout=10.0, net_policy=NetPolicy(), db=object(), max_workers=1)
    dispatcher.timeout = 120.0
    assert (dispatcher.timeout, dispatcher.poster.timeout, dispatcher.recorder.timeout) == (120.0, 120.0, 120.0)
