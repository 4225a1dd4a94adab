"""Recording what a batch's attempts came to.

`settle` turns an attempt's outcome into the delivery's next status (succeeded, retrying
with a delay, failed). `OutcomeRecorder.write` stores, in one transaction, every delivery
row and attempt of the batch and the circuit-breaker changes they imply (per endpoint: a
410 disables it, failures count towards opening it, a success closes it); then an opened
breaker gets its probe timer and a recovered endpoint gets its parked deliveries back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from chalicelib.repositories.webhooks import WebhookRepository
from chalicelib.webhooks import breaker, retry
from chalicelib.webhooks.endpoints import Endpoint, EndpointStates
from chalicelib.webhooks.jobs import Job
from chalicelib.webhooks.messages import delivery_message, probe_message, send_delivery_messages


def settle(job: Job, policy: retry.RetryPolicy) -> None:
    if job.outcome is None:
        return  # no attempt: skipped / disabled / deferred, already decided
    if job.outcome == retry.SUCCEEDED:
        job.status, job.error = "succeeded", None
    elif job.outcome == retry.RETRY:
        delay = policy.next_delay(job.round_attempt, job.retry_after)
        if delay is None:
            job.status = "failed"
            job.error = f"{job.error}; gave up after {job.round_attempt} attempt(s)"
        else:
            job.status, job.delay, job.next_attempt = "retrying", delay, job.attempt + 1
    else:  # failed (4xx), disabled (410), refused (SSRF)
        job.status = "failed"


@dataclass
class BreakerTally:
    """What a batch's attempts say about each endpoint."""
    successes: set[Endpoint] = field(default_factory=set)
    failures: dict[Endpoint, int] = field(default_factory=dict)
    disabled: set[Endpoint] = field(default_factory=set)

    def count(self, job: Job) -> None:
        if job.outcome == retry.SUCCEEDED:
            self.successes.add(job.endpoint)
        elif job.outcome == retry.RETRY or job.probe and job.outcome in (retry.FAILED, retry.REFUSED):
            self.failures[job.endpoint] = self.failures.get(job.endpoint, 0) + 1  # a failed probe always reopens
        elif job.outcome == retry.DISABLED:
            self.disabled.add(job.endpoint)


class OutcomeRecorder:
    def __init__(self, *, repo: WebhookRepository, db: Any, endpoints: EndpointStates, sqs: Callable[[], Any],
                 events_queue_url: Callable[[], str], breaker_config: breaker.BreakerConfig, timeout: float,
                 observe: Callable[[list[str], list[float], int], None] | None = None):
        self.repo = repo
        self.db = db
        self.endpoints = endpoints
        self._sqs = sqs
        self._events_url = events_queue_url
        self.breaker = breaker_config
        self.timeout = timeout
        # metrics hook (chalicelib/metrics.py record_deliveries): the row statuses written, the
        # attempts' latencies and the breakers opened, from the batch's thread or a late outcome's
        self._observe = observe

    def write(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        now = datetime.now(timezone.utc)
        tally = BreakerTally()
        rows, attempts = [], []
        for job in jobs:
            rows.append(self._row(job, now))
            if job.outcome:
                attempts.append(_attempt(job))
                tally.count(job)
        opened, recovered = self._write_rows(rows, attempts, tally, now)
        for endpoint in set(tally.failures) | tally.disabled:
            self.endpoints.invalidate(endpoint)
        recovered |= self._closed_meanwhile({job.endpoint for job in jobs if job.parked} - opened - recovered)
        self.after_breaker_changes(opened, recovered, tally.disabled)
        if self._observe is not None:
            self._observe([job.status for job in jobs],
                          [float(job.latency_ms) for job in jobs if job.outcome and job.latency_ms is not None],
                          len(opened))

    def _write_rows(self, rows: list[dict[str, Any]], attempts: list[dict[str, Any]], tally: BreakerTally,
                    now: datetime) -> tuple[set[Endpoint], set[Endpoint]]:
        """The batch's rows, and the breakers it moves in the same transaction: (opened, recovered)."""
        with self.db.connection() as conn:
            if not self._breakers_to_move(tally):  # the common case: one statement, atomic by itself
                self.repo.write_outcomes(conn, rows, attempts)
                return set(), set()
            with conn.transaction():
                self.repo.write_outcomes(conn, rows, attempts)
                return self._move_breakers(conn, tally, now)

    def _row(self, job: Job, now: datetime) -> dict[str, Any]:
        made = bool(job.outcome or job.handed_off)  # an attempt not made (deferred, skipped...) is not counted
        if job.delay is not None:
            next_at: datetime | None = now + timedelta(seconds=job.delay)
        else:
            next_at = now + timedelta(seconds=self.timeout) if job.handed_off else None
        return {
            "id": job.delivery_id, "event_id": job.event_id, "session_id": job.session_id,
            "session_uid": job.session_uid, "event": job.event, "url": job.url, "status": job.status,
            "attempt": job.attempt if made else job.attempt - 1,
            "round_attempt": job.round_attempt if made else job.round_attempt - 1,
            "http_status": job.http_status, "latency_ms": job.latency_ms,
            "response_excerpt": _text(job.excerpt), "error": _error(job), "payload": job.payload,
            "next_attempt_at": next_at, "last_attempt_at": job.attempted_at, "enqueued_at": job.enqueued_at,
            "target": job.target,
        }

    def _closed_meanwhile(self, parked_at: set[Endpoint]) -> set[Endpoint]:
        """Endpoints this batch parked deliveries at whose breaker has closed since the batch
        read it open: another dispatcher's probe succeeded and released the parked rows
        before these were written, so nothing else would ever release them."""
        if not parked_at:
            return set()
        states = self.repo.endpoints(parked_at)
        return {endpoint for endpoint in parked_at
                if (states.get(endpoint) or {"state": "closed"})["state"] == "closed"}

    def _breakers_to_move(self, tally: BreakerTally) -> bool:
        """False when the batch changes no breaker: only successes to endpoints known healthy."""
        return bool(tally.failures or tally.disabled
                    or any(not self.endpoints.known_healthy(endpoint) for endpoint in tally.successes))

    def _move_breakers(self, conn: Any, tally: BreakerTally, now: datetime) -> tuple[set[Endpoint], set[Endpoint]]:
        opened: set[Endpoint] = set()
        recovered: set[Endpoint] = set()
        for endpoint in tally.disabled:
            self.repo.disable(conn, endpoint, f"HTTP 410 Gone at {now.isoformat(timespec='seconds')}")
        for endpoint, count in tally.failures.items():
            if endpoint in tally.disabled:
                continue
            if endpoint in tally.successes:
                self.repo.record_success(conn, endpoint)
                recovered.add(endpoint)
            elif self.repo.record_failures(conn, endpoint, count, self.breaker.threshold) == "open":
                opened.add(endpoint)
        for endpoint in tally.successes - set(tally.failures) - tally.disabled:
            if not self.endpoints.known_healthy(endpoint):  # not known healthy: reset it
                self.repo.record_success(conn, endpoint)
                recovered.add(endpoint)
        return opened, recovered

    def after_breaker_changes(self, opened: set[Endpoint], recovered: set[Endpoint],
                              disabled: set[Endpoint] | frozenset[Endpoint] = frozenset()) -> None:
        """An opened breaker gets its probe timer; a recovered endpoint gets its parked deliveries back."""
        for endpoint in disabled:
            self.repo.fail_parked(endpoint, "endpoint disabled (HTTP 410 Gone)")
        messages = [probe_message(endpoint, self.breaker.cooldown) for endpoint in sorted(opened)]
        for endpoint in sorted(recovered):
            messages += [delivery_message(str(r["id"]), r["attempt"] + 1, 0)
                         for r in self.repo.release_parked(endpoint)]
        if messages:
            send_delivery_messages(self._sqs(), self._events_url(), messages)


def _attempt(job: Job) -> dict[str, Any]:
    # a retry outcome that ends the delivery is recorded as failed
    outcome = job.outcome if job.outcome != retry.RETRY or job.status == "retrying" else retry.FAILED
    return {"delivery_id": job.delivery_id, "attempt": job.attempt, "at": job.attempted_at, "outcome": outcome,
            "http_status": job.http_status, "latency_ms": job.latency_ms, "response_excerpt": _text(job.excerpt),
            "error": _error(job)}


def _error(job: Job) -> str | None:
    return (job.error or None) and _text(job.error[:1000])


def _text(value: str | None) -> str | None:
    """PostgreSQL text holds no NUL: a receiver answering one must not fail the batch's write."""
    return value.replace("\x00", "\ufffd") if value and "\x00" in value else value
