"""The webhook dispatcher: the `@app.on_sqs_message` handler of the events queue.

The events queue carries two kinds of message:
- event envelopes (`{"id", "session_id", "event", "timestamp", "data", "metadata"}`),
  written by `chalicelib.events`: each becomes one delivery to the session's webhook URL
  when the event matches the session's patterns;
- delivery messages (`{"type": "webhook.delivery", "delivery_id", "attempt", "not_before"}`),
  written by the dispatcher itself (retries, breaker deferrals, chained long delays) and
  by the API (redeliver, `POST /webhooks/send`).

A batch is handled like this: parse every record (a record that is not JSON or not one
of the two shapes is moved to the events DLQ at once); load the sessions' webhook
configs (cached a few seconds) and the endpoints' breaker states; POST every delivery
concurrently through the one outbound client (`chalicelib.netguard.http`: the SSRF guard
on every connection, no environment proxy, `WEBHOOK_TIMEOUT` as a total deadline for the
whole attempt, redirects not followed), at most WEBHOOK_SESSION_CONCURRENCY at once per
session, so one tenant's hanging endpoints cannot hold every thread (the jobs beyond the
cap are deferred: retried later without counting an attempt); put the retries and deferrals back on the queue with their
delay; then write deliveries and attempts in one transaction. No per-record outcome
ever raises: a failed delivery is a retry message, never an SQS redelivery of the batch.
The handler raises only when the database or the queue itself is down (then the whole
batch comes back, as it should); a record that breaks the code unexpectedly is reported
in `batchItemFailures` (honoured when ReportBatchItemFailures is on, see README).

The work is split by stage: `messages` (what travels on the queue, shared with the API),
`jobs` (building the batch's jobs; `routes` says where a session's deliveries go),
`posting` (the POSTs), `outcomes` (settling and recording them, moving the breakers);
this module sorts the records, applies the breakers and runs the stages in order.

Delivery is at-least-once: a crash between a POST and the write of its outcome means the
event is POSTed again with the same `webhook-id`.
"""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Callable

from chalicelib.crypto import SecretBox
from chalicelib.errors import DependencyUnavailable
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.repositories.webhooks import WebhookRepository
from chalicelib.webhooks import breaker, retry
from chalicelib.webhooks.endpoints import EndpointStates
from chalicelib.webhooks.jobs import Job, JobBuilder, Pair
from chalicelib.webhooks.messages import (DELIVERY_MESSAGE, PROBE_MESSAGE, delivery_id_for, delivery_message,
                                          parse_record, send_delivery_messages)
from chalicelib.webhooks.outcomes import OutcomeRecorder, settle
from chalicelib.webhooks.posting import Poster, apply
from chalicelib.webhooks.routes import SessionRoutes, pattern_matches

__all__ = ["DELIVERY_MESSAGE", "PROBE_MESSAGE", "WebhookDispatcher", "delivery_id_for", "delivery_message",
           "pattern_matches", "send_delivery_messages"]

WATCHDOG_MARGIN = 10.0
_parse = parse_record  # the name the unit tests know


class _Batch:
    """A batch's records sorted by kind."""

    def __init__(self, records: list[dict[str, Any]], now: float):
        self.events: list[Pair] = []
        self.deliveries: list[Pair] = []
        self.probes: list[dict[str, Any]] = []
        self.followups: list[dict[str, Any]] = []  # messages to put back on the queue
        self.poison: list[dict[str, Any]] = []
        self.failures: list[str] = []
        for record in records:
            self._sort(record, now)

    def _sort(self, record: dict[str, Any], now: float) -> None:
        kind, body = parse_record(record)
        if kind == "event":
            self.events.append((record, body))
        elif kind == "poison":
            self.poison.append(record)
        elif float(body.get("not_before") or 0) > now + 0.5:
            self.followups.append(body)  # a delay longer than SQS's 15 minutes: chained
        elif kind == "delivery":
            self.deliveries.append((record, body))
        else:
            self.probes.append(body)


class WebhookDispatcher:
    def __init__(self, *, repo: WebhookRepository, sqs: Any, events_queue_url: Callable[[], str],
                 dlq_url: Callable[[], str], secret_box: Callable[[], SecretBox], policy: retry.RetryPolicy,
                 breaker_config: breaker.BreakerConfig, timeout: float, net_policy: NetPolicy,
                 session_concurrency: int = 8, logger: Any = None, max_workers: int = 64, db: Any = None,
                 batch_wait: float | None = None, observe: Callable[[list[str], list[float], int], None] | None = None):
        self.repo = repo
        self.db = db or repo.db
        self.sqs = sqs
        self._events_url = events_queue_url
        self._dlq_url = dlq_url
        self.policy = policy
        self.logger = logger
        self._lock = threading.Lock()
        self.routes = SessionRoutes(repo, secret_box, self._lock, logger)
        self.endpoints = EndpointStates(repo, self._lock)
        self.builder = JobBuilder(repo=repo, routes=self.routes, endpoints=self.endpoints, policy=policy,
                                  breaker_config=breaker_config, logger=logger)
        self.poster = Poster(net_policy=net_policy, timeout=timeout, session_concurrency=session_concurrency,
                             max_workers=max_workers, lock=self._lock)
        self.recorder = OutcomeRecorder(repo=repo, db=self.db, endpoints=self.endpoints, sqs=lambda: self.sqs,
                                        events_queue_url=events_queue_url, breaker_config=breaker_config,
                                        timeout=timeout, observe=observe)
        self.batch_wait = min(timeout, 1.0) if batch_wait is None else batch_wait

    # -- settings and state the tests (and operators) may replace -------------------------
    @property
    def breaker(self) -> breaker.BreakerConfig:
        return self.builder.breaker

    @breaker.setter
    def breaker(self, config: breaker.BreakerConfig) -> None:
        self.builder.breaker = self.recorder.breaker = config

    @property
    def timeout(self) -> float:
        """WEBHOOK_TIMEOUT: the POST's total deadline, and what the watchdog, the deferrals
        and the 'delivering' row's next attempt are measured from. One value: the poster and
        the recorder read it from here."""
        return self.poster.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.poster.timeout = self.recorder.timeout = seconds

    @property
    def session_concurrency(self) -> int:
        return self.poster.session_concurrency

    @session_concurrency.setter
    def session_concurrency(self, value: int) -> None:
        self.poster.session_concurrency = value

    @property
    def _pool(self) -> ThreadPoolExecutor:
        return self.poster.pool

    @_pool.setter
    def _pool(self, pool: ThreadPoolExecutor) -> None:
        self.poster.pool = pool

    @property
    def _in_flight_by_session(self) -> dict[str, int]:
        return self.poster.in_flight_by_session

    @property
    def _endpoints(self) -> dict[Any, Any]:
        return self.endpoints.cache

    @property
    def http(self) -> Any:
        return self.poster.http

    def forget_session(self, session_id: str) -> None:
        """Drop cached routing of every row that has (or had) this session_id."""
        self.routes.forget_session(session_id)

    # -- entry point ----------------------------------------------------------------------
    def handle(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        batch = _Batch(records, time.time())
        if batch.poison:
            self._to_dlq(batch.poison)
        try:
            jobs = self._build(batch)
        except DependencyUnavailable:
            self._come_back_soon(records)
            raise
        live = [j for j in jobs if j.status == "pending"]
        self._apply_breaker([j for j in live if not j.probe])
        handed = self.poster.post_all([j for j in live if j.status == "pending"], self.batch_wait, self._defer)
        try:
            self._record(jobs, handed, batch.followups)
        finally:  # after the 'delivering' rows are written (or the batch failed): late outcomes may land
            for job, future in handed.items():
                future.add_done_callback(partial(self._finish_handed_off, job))
        return {"batchItemFailures": [{"itemIdentifier": rid} for rid in batch.failures]}

    def _build(self, batch: _Batch) -> list[Job]:
        try:
            return (self.builder.for_events(batch.events, batch.failures)
                    + self.builder.for_deliveries(batch.deliveries, batch.failures)
                    + self.builder.for_probes(batch.probes, batch.followups))
        except Exception:
            if self.logger:
                self.logger.exception("webhook batch preparation failed")
            raise  # database down: the whole batch comes back

    def _record(self, jobs: list[Job], handed: dict[Job, Future], followups: list[dict[str, Any]]) -> None:
        for job in jobs:
            if not job.handed_off:
                settle(job, self.policy)
        followups += [delivery_message(j.delivery_id, j.next_attempt, j.delay)
                      for j in jobs if j.delay is not None and j.next_attempt is not None]
        # an attempt still running after the batch wait: a watchdog retries it if its outcome never comes
        followups += [{**delivery_message(j.delivery_id, j.attempt, self.timeout + WATCHDOG_MARGIN),
                       "watchdog": True} for j in handed]
        if followups:
            send_delivery_messages(self.sqs, self._events_url(), followups)
        self.recorder.write(jobs)

    def _finish_handed_off(self, job: Job, future: Future) -> None:
        """The outcome of an attempt that outlived its batch (runs on the POST's thread)."""
        try:
            apply(job, future.result())
            job.handed_off = False
            settle(job, self.policy)
            if job.delay is not None and job.next_attempt is not None:
                send_delivery_messages(self.sqs, self._events_url(),
                                       [delivery_message(job.delivery_id, job.next_attempt, job.delay)])
            self.recorder.write([job])
        except Exception:
            if self.logger:
                self.logger.exception("writing a late webhook outcome failed", extra={"delivery_id": job.delivery_id})
        finally:
            self.poster.slow_attempt_done(job.url)

    # -- circuit breaker ----------------------------------------------------------------
    def _apply_breaker(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        states = self.endpoints.states({j.endpoint for j in jobs})
        probing: dict[tuple[str, str], bool] = {}
        slow = self.poster.slow_urls()
        for job in jobs:
            if job.url in slow:  # an attempt to it is still hanging here: do not pile on
                self._defer(job, self.timeout + 1.0, "deferred: an earlier attempt to this endpoint is still running")
                continue
            self._gate(job, states.get(job.endpoint), probing)

    def _gate(self, job: Job, state: dict[str, Any] | None, probing: dict[tuple[str, str], bool]) -> None:
        decision, _wait = breaker.decide(state, self.breaker)
        if decision == breaker.GO:
            return
        if decision == breaker.DISABLED:
            job.status, job.error = "failed", f"endpoint disabled ({(state or {}).get('disabled_reason') or 'disabled'})"
            return
        if decision == breaker.PROBE and job.endpoint not in probing:
            probing[job.endpoint] = self.repo.claim_probe(job.endpoint, self.breaker.cooldown,
                                                          self.breaker.probe_timeout)
            if probing[job.endpoint]:
                self.endpoints.invalidate(job.endpoint)
                job.probe = True
                return  # this job is the probe
        # open, or a probe is in flight: wait in the database, released when the breaker closes
        job.status, job.parked, job.error = "retrying", True, "waiting: circuit breaker open"

    def _defer(self, job: Job, wait: float, why: str = "deferred: circuit breaker open") -> None:
        if job.age + wait > self.policy.max_age:
            job.status, job.error = "failed", "endpoint unavailable (circuit breaker open) for the whole retry schedule"
            return
        job.status, job.error = "retrying", why
        job.delay, job.next_attempt = wait * random.uniform(1.0, 1.2), job.attempt  # no attempt made

    # -- database down ------------------------------------------------------------------
    def _come_back_soon(self, records: list[dict[str, Any]]) -> None:
        """The database did not answer: the batch fails, and SQS would hand it back only after
        the queue's visibility timeout (6 min for events), so a blip of seconds held deliveries
        for minutes (bench/faults.py scenario 3). Shorten it by receive count instead: 15 s,
        1 min, 4 min, 15 min; a long outage still reaches the DLQ after MaxReceiveCount
        receives, about as late as before (~20 min against 4 x 6 min)."""
        url = self._events_url()
        handles = [r for r in records if r.get("receiptHandle")]
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": outage_backoff(r)}
                       for i, r in enumerate(handles[start:start + 10])]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            except Exception as exc:  # noqa: BLE001 - the queue's own timeout still brings them back
                if self.logger:
                    self.logger.warning("could not shorten the visibility of a failed batch",
                                        extra={"error": str(exc)[:200]})

    # -- poison -------------------------------------------------------------------------
    def _to_dlq(self, records: list[dict[str, Any]]) -> None:
        url = self._dlq_url()
        for start in range(0, len(records), 10):
            chunk = records[start:start + 10]
            self.sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": r.get("body") or "(empty)",
                 "MessageAttributes": {"reason": {"DataType": "String",
                                                  "StringValue": "not an event envelope or delivery message"},
                                       "source_message_id": {"DataType": "String",
                                                             "StringValue": r.get("messageId", "?")}}}
                for i, r in enumerate(chunk)])
        if self.logger:
            self.logger.warning("moved unreadable event message(s) to the events DLQ",
                                extra={"count": len(records)})


def outage_backoff(record: dict[str, Any]) -> int:
    """Seconds until a record of a batch that failed on the database comes back: 15 s after
    the first receive, x4 per receive, at most 15 min."""
    try:
        received = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
    except (TypeError, ValueError):
        received = 1
    return int(min(15 * 4 ** (max(received, 1) - 1), 900))
