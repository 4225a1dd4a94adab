"""Posting a batch's jobs: concurrent signed POSTs through the one outbound client.

`chalicelib.netguard.http` applies the SSRF guard on every connection, ignores any
environment proxy, follows no redirect and holds `WEBHOOK_TIMEOUT` as a total deadline for
the whole attempt. A batch waits at most `batch_wait` for its POSTs: a hanging endpoint
thus holds its batch (and the poller behind it) for `batch_wait`, not `WEBHOOK_TIMEOUT`;
an attempt still running is handed off (its outcome is recorded when it comes, or its
watchdog message retries it). While an endpoint has such an attempt in flight here, its
next deliveries are deferred instead of sent, so other sessions' events keep flowing. A
session has at most `session_concurrency` POSTs running at once (attempts still running
from earlier batches count): the rest are deferred, so the pool's threads stay shared.

`post` never touches its job (it may outlive its batch): it returns an `AttemptResult`,
which `apply` copies onto the job.
"""
from __future__ import annotations

import threading
import time
from functools import partial
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import Any, Callable

from chalicelib.netguard.http import (OutboundError, OutboundHttp, OutboundRefused, OutboundTimeout,
                                      OutboundUnresolvable)
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.webhooks import retry
from chalicelib.webhooks.jobs import Job
from chalicelib.webhooks.signing import encode_body, signature_headers

EXCERPT_BYTES = 1024
USER_AGENT = "zemeow-webhooks/1"

AttemptResult = dict[str, Any]  # Job field -> value


class Poster:
    def __init__(self, *, net_policy: NetPolicy, timeout: float, session_concurrency: int, max_workers: int,
                 lock: threading.Lock):
        self.http = OutboundHttp(net_policy, user_agent=USER_AGENT, pool_maxsize=16)
        self.timeout = timeout
        self.session_concurrency = session_concurrency
        self.pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="webhook-post")
        self._lock = lock
        self.in_flight_by_session: dict[str, int] = {}  # session -> POSTs running in this dispatcher
        self.in_flight_slow: dict[str, int] = {}  # url -> attempts that outlived their batch

    def post_all(self, jobs: list[Job], batch_wait: float,
                 defer: Callable[[Job, float, str], None]) -> dict[Job, Future]:
        """POST concurrently; wait at most `batch_wait`. Returns the jobs still running."""
        if not jobs:
            return {}
        futures: dict[Future, Job] = {}
        for job in jobs:
            if not self._claim_slot(job.session_id, always=job.probe):
                defer(job, min(self.timeout, 5.0) + 1.0,
                      f"deferred: {self.session_concurrency} deliveries of this session are already in "
                      "flight (WEBHOOK_SESSION_CONCURRENCY)")
                continue
            future = self.pool.submit(self.post, job)
            future.add_done_callback(partial(self._release_after, job.session_id))
            futures[future] = job
        done, running = wait(futures, timeout=batch_wait)
        for future in done:
            apply(futures[future], future.result())
        handed: dict[Job, Future] = {}
        for future in running:
            job = futures[future]
            job.handed_off, job.status = True, "delivering"
            job.attempted_at = datetime.now(timezone.utc)
            handed[job] = future
            with self._lock:
                self.in_flight_slow[job.url] = self.in_flight_slow.get(job.url, 0) + 1
        return handed

    def slow_urls(self) -> set[str]:
        """URLs with an attempt that outlived its batch and still runs here."""
        with self._lock:
            return {url for url, n in self.in_flight_slow.items() if n > 0}

    def slow_attempt_done(self, url: str) -> None:
        with self._lock:
            left = self.in_flight_slow.get(url, 1) - 1
            if left > 0:
                self.in_flight_slow[url] = left
            else:
                self.in_flight_slow.pop(url, None)

    def _claim_slot(self, session_id: str, *, always: bool = False) -> bool:
        """A breaker's probe (`always`) is never deferred: it holds the endpoint's probe claim."""
        with self._lock:
            running = self.in_flight_by_session.get(session_id, 0)
            if running >= self.session_concurrency and not always:
                return False
            self.in_flight_by_session[session_id] = running + 1
            return True

    def _release_after(self, session_id: str, _future: Future) -> None:
        self._release_slot(session_id)

    def _release_slot(self, session_id: str) -> None:
        with self._lock:
            left = self.in_flight_by_session.get(session_id, 1) - 1
            if left > 0:
                self.in_flight_by_session[session_id] = left
            else:
                self.in_flight_by_session.pop(session_id, None)

    def post(self, job: Job) -> AttemptResult:
        """One HTTP attempt and its outcome (`retry.classify`, or the transport failure's)."""
        body = encode_body(job.payload)
        headers = {"Content-Type": "application/json", **signature_headers(job.secrets, job.event_id, body)}
        result: AttemptResult = {"attempted_at": datetime.now(timezone.utc)}
        started = time.perf_counter()
        try:
            response = self.http.request("POST", job.url, data=body, headers=headers, timeout=self.timeout,
                                         max_bytes=EXCERPT_BYTES, overflow="truncate", drain=64 * 1024,
                                         what="webhook URL")
        except Exception as exc:  # noqa: BLE001 - every transport problem is an outcome, never a raise
            result["outcome"], result["error"] = self._failure(exc)
        else:
            result["http_status"] = response.status
            result["excerpt"] = response.body.decode("utf-8", "replace")
            result["outcome"] = retry.classify(response.status)
            if result["outcome"] == retry.RETRY:
                result["retry_after"] = retry.parse_retry_after(response.headers.get("Retry-After"), time.time())
            if result["outcome"] != retry.SUCCEEDED:
                result["error"] = f"HTTP {response.status}"
        result["latency_ms"] = int((time.perf_counter() - started) * 1000)
        return result

    def _failure(self, exc: Exception) -> tuple[str, str]:
        """(outcome, error) of an attempt that got no HTTP answer: a refusal fails at once,
        anything else (DNS included) is retried like any network error."""
        if isinstance(exc, OutboundRefused):
            return retry.REFUSED, f"refused by the SSRF guard: {exc.message}"
        if isinstance(exc, OutboundTimeout):
            return retry.RETRY, f"timed out after {self.timeout:g}s (total deadline)"
        if isinstance(exc, OutboundUnresolvable):
            return retry.RETRY, f"connection failed: {exc.message}"
        if isinstance(exc, OutboundError):
            return retry.RETRY, exc.message
        return retry.RETRY, f"{exc.__class__.__name__}: {_short(exc)}"


def apply(job: Job, result: AttemptResult) -> None:
    for name, value in result.items():
        setattr(job, name, value)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0][:300]
