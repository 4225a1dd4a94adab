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

Delivery is at-least-once: a crash between a POST and the write of its outcome means the
event is POSTed again with the same `webhook-id`.
"""
from __future__ import annotations

import json
import math
import random
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from chalicelib.crypto import DecryptionError, SecretBox
from chalicelib.repositories.webhooks import FINAL_STATUSES, WebhookRepository
from chalicelib.webhooks import breaker, retry
from chalicelib.webhooks.signing import encode_body, signature_headers
from chalicelib.netguard.http import OutboundError, OutboundHttp
from chalicelib.netguard.resolve import NetPolicy

DELIVERY_MESSAGE = "webhook.delivery"
PROBE_MESSAGE = "webhook.probe"
SQS_MAX_DELAY = 900
CONFIG_TTL = 5.0
ENDPOINT_TTL = 1.0
EXCERPT_BYTES = 1024
WATCHDOG_MARGIN = 10.0
USER_AGENT = "zemeow-webhooks/1"
_DELIVERY_NS = uuid.UUID("6f1c1f4e-8d3a-4b8e-9f61-3b7f0d2a9c55")


def delivery_id_for(event_id: str, url: str) -> str:
    """Deterministic: the same event to the same URL is always the same delivery."""
    return str(uuid.uuid5(_DELIVERY_NS, f"{event_id}|{url}"))


def pattern_matches(patterns: list[str] | None, event: str) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        if pattern == "*" or pattern == event:
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def delivery_message(delivery_id: str, attempt: int, delay: float) -> dict[str, Any]:
    return {"type": DELIVERY_MESSAGE, "delivery_id": delivery_id, "attempt": attempt,
            "not_before": time.time() + max(0.0, delay)}


def probe_message(endpoint: tuple[str, str], delay: float) -> dict[str, Any]:
    """The timer of an open breaker: after the cooldown, one parked delivery probes the endpoint."""
    return {"type": PROBE_MESSAGE, "session_uid": endpoint[0], "url": endpoint[1],
            "not_before": time.time() + max(0.0, delay)}


def send_delivery_messages(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Each message gets DelaySeconds = its remaining delay (at most 15 min; longer ones chain)."""
    now = time.time()
    for start in range(0, len(messages), 10):
        chunk = messages[start:start + 10]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": json.dumps(m, separators=(",", ":")),
             "DelaySeconds": min(SQS_MAX_DELAY, max(0, math.ceil(m["not_before"] - now))),
             "MessageAttributes": {"kind": {"DataType": "String", "StringValue": m.get("type", DELIVERY_MESSAGE)}}}
            for i, m in enumerate(chunk)])
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} delivery message(s)")


@dataclass(eq=False)
class Job:
    record_id: str
    delivery_id: str
    event_id: str
    session_id: str
    session_uid: str             # the owner: the session row's id (issue 11, finding 1)
    event: str
    url: str
    payload: dict[str, Any]
    attempt: int                 # the attempt this job makes (1-based, all rounds)
    round_attempt: int           # ... within the current round
    target: str = "session"
    enqueued_at: datetime | None = None
    age: float = 0.0
    secrets: list[str] = field(default_factory=list)
    # results
    status: str = "pending"      # row status to write
    outcome: str | None = None   # attempt outcome (None: no HTTP attempt)
    http_status: int | None = None
    latency_ms: int | None = None
    excerpt: str | None = None
    error: str | None = None
    retry_after: float | None = None
    delay: float | None = None   # follow-up message delay (retry or deferral)
    next_attempt: int | None = None
    attempted_at: datetime | None = None
    handed_off: bool = False     # still running when its batch returned
    parked: bool = False         # waits in the database until its endpoint's breaker closes
    probe: bool = False          # the half-open probe of its endpoint

    @property
    def endpoint(self) -> tuple[str, str]:
        """What the circuit breaker is keyed by: this session's use of this URL."""
        return (self.session_uid, self.url)


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
        self._secret_box = secret_box
        self.policy = policy
        self.breaker = breaker_config
        self.timeout = timeout
        self.http = OutboundHttp(net_policy, user_agent=USER_AGENT, pool_maxsize=16)
        self.session_concurrency = session_concurrency
        self.logger = logger
        # metrics hook (chalicelib/metrics.py record_deliveries): the row statuses written, the
        # attempts' latencies and the breakers opened, from the batch's thread or a late outcome's
        self._observe = observe
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="webhook-post")
        self._lock = threading.Lock()
        self._in_flight_by_session: dict[str, int] = {}  # session -> POSTs running in this dispatcher
        self._configs: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._endpoints: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._in_flight_slow: dict[str, int] = {}  # url -> attempts that outlived their batch
        self.batch_wait = min(timeout, 1.0) if batch_wait is None else batch_wait

    # -- entry point ----------------------------------------------------------------------
    def handle(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        failures: list[str] = []
        jobs: list[Job] = []
        followups: list[dict[str, Any]] = []
        poison: list[dict[str, Any]] = []
        events: list[tuple[dict[str, Any], dict[str, Any]]] = []
        deliveries: list[tuple[dict[str, Any], dict[str, Any]]] = []
        probes: list[dict[str, Any]] = []
        now = time.time()
        for record in records:
            kind, body = _parse(record)
            if kind == "event":
                events.append((record, body))
            elif kind in ("delivery", "probe") and float(body.get("not_before") or 0) > now + 0.5:
                followups.append(body)  # a delay longer than SQS's 15 minutes: chained
            elif kind == "delivery":
                deliveries.append((record, body))
            elif kind == "probe":
                probes.append(body)
            else:
                poison.append(record)
        if poison:
            self._to_dlq(poison)
        try:
            jobs += self._jobs_for_events(events, failures)
            jobs += self._jobs_for_deliveries(deliveries, failures)
            jobs += self._jobs_for_probes(probes, followups)
        except Exception:
            if self.logger:
                self.logger.exception("webhook batch preparation failed")
            raise  # database down: the whole batch comes back
        live = [j for j in jobs if j.status == "pending"]
        self._apply_breaker([j for j in live if not j.probe])
        handed = self._post_all([j for j in live if j.status == "pending"])
        try:
            for job in jobs:
                if not job.handed_off:
                    self._settle(job)
            followups += [delivery_message(j.delivery_id, j.next_attempt, j.delay)
                          for j in jobs if j.delay is not None and j.next_attempt is not None]
            # an attempt still running after the batch wait: a watchdog retries it if its outcome never comes
            followups += [{**delivery_message(j.delivery_id, j.attempt, self.timeout + WATCHDOG_MARGIN),
                           "watchdog": True} for j in handed]
            if followups:
                send_delivery_messages(self.sqs, self._events_url(), followups)
            self._write(jobs)
        finally:  # after the 'delivering' rows are written (or the batch failed): late outcomes may land
            for job, future in handed.items():
                future.add_done_callback(lambda f, job=job: self._finish_handed_off(job, f))
        return {"batchItemFailures": [{"itemIdentifier": rid} for rid in failures]}

    def _finish_handed_off(self, job: Job, future: Future) -> None:
        """The outcome of an attempt that outlived its batch (runs on the POST's thread)."""
        try:
            self._apply(job, future.result())
            job.handed_off = False
            self._settle(job)
            if job.delay is not None and job.next_attempt is not None:
                send_delivery_messages(self.sqs, self._events_url(),
                                       [delivery_message(job.delivery_id, job.next_attempt, job.delay)])
            self._write([job])
        except Exception:  # noqa: BLE001 - the watchdog message retries it
            if self.logger:
                self.logger.exception("writing a late webhook outcome failed", extra={"delivery_id": job.delivery_id})
        finally:
            with self._lock:
                left = self._in_flight_slow.get(job.url, 1) - 1
                if left > 0:
                    self._in_flight_slow[job.url] = left
                else:
                    self._in_flight_slow.pop(job.url, None)

    # -- building jobs ------------------------------------------------------------------
    def _jobs_for_events(self, events: list[tuple[dict, dict]], failures: list[str]) -> list[Job]:
        if not events:
            return []
        owners = self._owners([body for _, body in events])
        configs = self._session_configs(set(owners.values()))
        jobs: list[Job] = []
        redelivered: list[Job] = []
        for record, envelope in events:
            try:
                owner = owners.get(envelope["id"])
                config = configs.get(owner) if owner else None
                if not config or not config["webhook_url"] or not config["secrets"]:
                    continue
                if not pattern_matches(config["webhook_events"], envelope["event"]):
                    continue
                url = config["webhook_url"]
                job = Job(record_id=record["messageId"], delivery_id=delivery_id_for(envelope["id"], url),
                          event_id=envelope["id"], session_id=envelope["session_id"], session_uid=owner,
                          event=envelope["event"],
                          url=url, payload=envelope, attempt=1, round_attempt=1,
                          enqueued_at=_parse_time(envelope.get("timestamp")), secrets=config["secrets"])
                jobs.append(job)
                if int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")) > 1:
                    redelivered.append(job)
            except Exception:  # noqa: BLE001 - one odd record must not hold the others back
                failures.append(record["messageId"])
        if redelivered:  # an SQS redelivery after a crash: do not redo what is done or scheduled
            existing = self.repo.deliveries_by_key([(j.event_id, j.url) for j in redelivered])
            for job in redelivered:
                row = existing.get((job.event_id, job.url))
                if row is None:
                    continue
                if row["status"] in FINAL_STATUSES or row["status"] in ("retrying", "delivering"):
                    job.status = "done"
                else:
                    job.attempt, job.round_attempt = row["attempt"] + 1, row["round_attempt"] + 1
        return [j for j in jobs if j.status != "done"]

    def _jobs_for_deliveries(self, deliveries: list[tuple[dict, dict]], failures: list[str]) -> list[Job]:
        if not deliveries:
            return []
        rows = self.repo.deliveries_by_id([body["delivery_id"] for _, body in deliveries])
        configs = self._session_configs({str(row["session_uid"]) for row in rows.values()})
        jobs: list[Job] = []
        for record, body in deliveries:
            try:
                row = rows.get(body["delivery_id"])
                if body.get("watchdog"):
                    if row is not None and row["status"] == "delivering" and row["attempt"] == int(body["attempt"]):
                        jobs.append(self._lost_attempt(record, row))
                    continue
                if row is None or row["status"] in FINAL_STATUSES or row["attempt"] >= int(body["attempt"]):
                    continue  # gone, done, or a duplicate of a message already handled
                job = self._job_from_row(record, row)
                self._check_session(job, row, configs.get(job.session_uid))
                jobs.append(job)
            except Exception:  # noqa: BLE001
                failures.append(record["messageId"])
        return jobs

    def _jobs_for_probes(self, probes: list[dict[str, Any]], followups: list[dict[str, Any]]) -> list[Job]:
        jobs: list[Job] = []
        for endpoint in sorted({(p["session_uid"], p["url"]) for p in probes}):
            expired = self.repo.expire_parked(endpoint, self.policy.max_age)
            if expired and self.logger:
                self.logger.warning("parked webhook deliveries expired", extra={"url": endpoint[1], "count": expired})
            if not self.repo.claim_probe(endpoint, self.breaker.cooldown, self.breaker.probe_timeout):
                continue  # closed meanwhile, disabled, or another dispatcher is probing
            self._invalidate(endpoint)
            row = self.repo.oldest_parked(endpoint)
            if row is None:
                self.repo.enable(endpoint)  # nothing waits for it: give it a fresh start
                continue
            job = self._job_from_row({"messageId": "probe"}, row)
            configs = self._session_configs({job.session_uid})
            self._check_session(job, row, configs.get(job.session_uid))
            if job.status != "pending":  # not sendable: the next parked one probes after probe_timeout
                followups.append(probe_message(endpoint, self.breaker.probe_timeout))
            job.probe = True
            jobs.append(job)
        return jobs

    @staticmethod
    def _job_from_row(record: dict[str, Any], row: dict[str, Any]) -> Job:
        return Job(record_id=record["messageId"], delivery_id=str(row["id"]), event_id=str(row["event_id"]),
                   session_id=row["session_id"], session_uid=str(row["session_uid"]), event=row["event"],
                   url=row["url"], payload=row["payload"], attempt=row["attempt"] + 1, round_attempt=row["round_attempt"] + 1,
                   target=row["target"], enqueued_at=row["enqueued_at"], age=float(row["age"] or 0))

    @staticmethod
    def _check_session(job: Job, row: dict[str, Any], config: dict[str, Any] | None) -> None:
        if config is None:
            job.status, job.error = "skipped", "the session was deleted"
        elif not config["secrets"]:
            job.status, job.error = "skipped", "the session has no webhook secret"
        elif job.target == "session" and config["webhook_url"] != row["url"]:
            job.status, job.error = "skipped", "the session's webhook URL changed"
        else:
            job.secrets = config["secrets"]

    @staticmethod
    def _lost_attempt(record: dict[str, Any], row: dict[str, Any]) -> Job:
        """An attempt whose outcome never came back (its dispatcher stopped): counted as a failure."""
        return Job(record_id=record["messageId"], delivery_id=str(row["id"]), event_id=str(row["event_id"]),
                   session_id=row["session_id"], session_uid=str(row["session_uid"]), event=row["event"],
                   url=row["url"], payload=row["payload"], attempt=row["attempt"], round_attempt=row["round_attempt"], target=row["target"],
                   enqueued_at=row["enqueued_at"], age=float(row["age"] or 0), status="lost",
                   outcome=retry.RETRY, attempted_at=row["last_attempt_at"],
                   error="the attempt's outcome was lost (its dispatcher stopped)")

    def _owners(self, envelopes: list[dict[str, Any]]) -> dict[str, str]:
        """event id -> the row id of the session that produced it: `metadata.session_uid`, or
        (an envelope written before migration 0050) the session that has its session_id now."""
        owners: dict[str, str] = {}
        legacy: list[dict[str, Any]] = []
        for envelope in envelopes:
            uid = (envelope.get("metadata") or {}).get("session_uid")
            if isinstance(uid, str) and uid:
                owners[envelope["id"]] = uid
            else:
                legacy.append(envelope)
        if legacy:
            current = self.repo.current_session_uids({e["session_id"] for e in legacy})
            for envelope in legacy:
                if envelope["session_id"] in current:
                    owners[envelope["id"]] = current[envelope["session_id"]]
        return owners

    def _session_configs(self, session_uids: set[str]) -> dict[str, dict[str, Any]]:
        """Webhook routing per session row id, cached CONFIG_TTL seconds. A deleted session's
        row id maps to its tombstone; a new session reusing its session_id has another row
        id, so no cache entry of one can ever route the other's events."""
        now = time.monotonic()
        found: dict[str, dict[str, Any]] = {}
        missing = []
        with self._lock:
            for sid in session_uids:
                cached = self._configs.get(sid)
                if cached and cached[0] > now:
                    if cached[1] is not None:
                        found[sid] = cached[1]
                else:
                    missing.append(sid)
        if missing:
            rows = self.repo.session_configs(missing)
            box = None
            loaded: dict[str, dict[str, Any] | None] = {}
            for sid in missing:
                row = rows.get(sid)
                if row is None:
                    loaded[sid] = None
                    continue
                secrets = []
                context = f"webhook:{row['session_id']}"
                # the current secret, then every previous one a rotation promised and whose
                # expiry is still ahead: one `v1,` signature each (migration 0059)
                encrypted = [enc for enc in (row["webhook_secret_enc"], *row["webhook_secrets_live_enc"])
                             if enc is not None]
                if encrypted:
                    box = box or self._secret_box()
                try:
                    secrets.extend(box.decrypt(enc, context=context) for enc in encrypted)
                except DecryptionError:  # ENCRYPTION_KEY changed: never send unsigned; say so loudly
                    secrets = []
                    if self.logger:
                        self.logger.error("webhook secret does not decrypt; deliveries skipped",
                                          extra={"session_id": row["session_id"]})
                loaded[sid] = {"session_id": row["session_id"], "webhook_url": row["webhook_url"], "webhook_events": list(row["webhook_events"] or []),
                               "secrets": secrets}
            with self._lock:
                for sid, config in loaded.items():
                    self._configs[sid] = (now + CONFIG_TTL, config)
                    if config is not None:
                        found[sid] = config
        return found

    def forget_session(self, session_id: str) -> None:
        """Drop cached routing of every row that has (or had) this session_id."""
        with self._lock:
            for uid in [uid for uid, (_, config) in self._configs.items()
                        if config is not None and config.get("session_id") == session_id]:
                del self._configs[uid]

    # -- circuit breaker ----------------------------------------------------------------
    def _endpoint_states(self, endpoints: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        now = time.monotonic()
        states: dict[tuple[str, str], dict[str, Any] | None] = {}
        missing = []
        with self._lock:
            for endpoint in endpoints:
                cached = self._endpoints.get(endpoint)
                if cached and cached[0] > now:
                    states[endpoint] = cached[1]
                else:
                    missing.append(endpoint)
        if missing:
            rows = self.repo.endpoints(missing)
            with self._lock:
                for endpoint in missing:
                    row = rows.get(endpoint)
                    states[endpoint] = row
                    healthy = row is None or (row["state"] == "closed" and not row["consecutive_failures"])
                    if healthy:
                        self._endpoints[endpoint] = (now + ENDPOINT_TTL, row)
        return states

    def _apply_breaker(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        states = self._endpoint_states({j.endpoint for j in jobs})
        probing: dict[tuple[str, str], bool] = {}
        with self._lock:
            slow = {url for url, n in self._in_flight_slow.items() if n > 0}
        for job in jobs:
            if job.url in slow:  # an attempt to it is still hanging here: do not pile on
                self._defer(job, self.timeout + 1.0, "deferred: an earlier attempt to this endpoint is still running")
                continue
            decision, wait = breaker.decide(states.get(job.endpoint), self.breaker)
            if decision == breaker.GO:
                continue
            if decision == breaker.DISABLED:
                reason = (states[job.endpoint] or {}).get("disabled_reason") or "disabled"
                job.status, job.error = "failed", f"endpoint disabled ({reason})"
                continue
            if decision == breaker.PROBE and job.endpoint not in probing:
                probing[job.endpoint] = self.repo.claim_probe(job.endpoint, self.breaker.cooldown,
                                                              self.breaker.probe_timeout)
                if probing[job.endpoint]:
                    self._invalidate(job.endpoint)
                    job.probe = True
                    continue  # this job is the probe
            # open, or a probe is in flight: wait in the database, released when the breaker closes
            job.status, job.parked, job.error = "retrying", True, "waiting: circuit breaker open"

    def _defer(self, job: Job, wait: float, why: str = "deferred: circuit breaker open") -> None:
        if job.age + wait > self.policy.max_age:
            job.status, job.error = "failed", "endpoint unavailable (circuit breaker open) for the whole retry schedule"
            return
        job.status, job.error = "retrying", why
        job.delay, job.next_attempt = wait * random.uniform(1.0, 1.2), job.attempt  # no attempt made

    def _invalidate(self, endpoint: tuple[str, str]) -> None:
        with self._lock:
            self._endpoints.pop(endpoint, None)

    # -- HTTP ---------------------------------------------------------------------------
    def _post_all(self, jobs: list[Job]) -> dict[Job, Future]:
        """POST concurrently; wait at most `batch_wait` for them. Returns those still running.

        A hanging endpoint thus holds its batch (and the poller behind it) for `batch_wait`,
        not `WEBHOOK_TIMEOUT`; while it has an attempt in flight here, its next deliveries are
        deferred instead of sent, so other sessions' events keep flowing. A session has at
        most `session_concurrency` POSTs running at once (attempts still running from earlier
        batches count): the rest are deferred, so the pool's threads stay shared.
        """
        if not jobs:
            return {}
        futures: dict[Future, Job] = {}
        for job in jobs:
            if not self._claim_slot(job.session_id, always=job.probe):
                self._defer(job, min(self.timeout, 5.0) + 1.0,
                            f"deferred: {self.session_concurrency} deliveries of this session are already in "
                            "flight (WEBHOOK_SESSION_CONCURRENCY)")
                continue
            future = self._pool.submit(self._post, job)
            future.add_done_callback(lambda _f, sid=job.session_id: self._release_slot(sid))
            futures[future] = job
        done, running = wait(futures, timeout=self.batch_wait)
        for future in done:
            self._apply(futures[future], future.result())
        handed: dict[Job, Future] = {}
        for future in running:
            job = futures[future]
            job.handed_off, job.status = True, "delivering"
            job.attempted_at = datetime.now(timezone.utc)
            handed[job] = future
            with self._lock:
                self._in_flight_slow[job.url] = self._in_flight_slow.get(job.url, 0) + 1
        return handed

    def _claim_slot(self, session_id: str, *, always: bool = False) -> bool:
        """A breaker's probe (`always`) is never deferred: it holds the endpoint's probe claim."""
        with self._lock:
            running = self._in_flight_by_session.get(session_id, 0)
            if running >= self.session_concurrency and not always:
                return False
            self._in_flight_by_session[session_id] = running + 1
            return True

    def _release_slot(self, session_id: str) -> None:
        with self._lock:
            left = self._in_flight_by_session.get(session_id, 1) - 1
            if left > 0:
                self._in_flight_by_session[session_id] = left
            else:
                self._in_flight_by_session.pop(session_id, None)

    def _post(self, job: Job) -> dict[str, Any]:
        """One HTTP attempt. Returns its result; never touches `job` (it may outlive its batch)."""
        body = encode_body(job.payload)
        headers = {"Content-Type": "application/json", **signature_headers(job.secrets, job.event_id, body)}
        result: dict[str, Any] = {"attempted_at": datetime.now(timezone.utc)}
        started = time.perf_counter()
        try:
            response = self.http.request("POST", job.url, data=body, headers=headers, timeout=self.timeout,
                                         max_bytes=EXCERPT_BYTES, overflow="truncate", drain=64 * 1024,
                                         what="webhook URL")
            result["http_status"] = response.status
            result["excerpt"] = response.body.decode("utf-8", "replace")
            result["outcome"] = retry.classify(response.status)
            if result["outcome"] == retry.RETRY:
                result["retry_after"] = retry.parse_retry_after(response.headers.get("Retry-After"), time.time())
            if result["outcome"] != retry.SUCCEEDED:
                result["error"] = f"HTTP {response.status}"
        except OutboundError as exc:
            if exc.kind == "refused":
                result["outcome"], result["error"] = retry.REFUSED, f"refused by the SSRF guard: {exc.message}"
            elif exc.kind == "timeout":
                result["outcome"], result["error"] = retry.RETRY, f"timed out after {self.timeout:g}s (total deadline)"
            elif exc.kind == "unresolvable":  # DNS: retried like any network error
                result["outcome"], result["error"] = retry.RETRY, f"connection failed: {exc.message}"
            else:
                result["outcome"], result["error"] = retry.RETRY, exc.message
        except Exception as exc:  # noqa: BLE001 - any other transport problem is a retry
            result["outcome"], result["error"] = retry.RETRY, f"{exc.__class__.__name__}: {_short(exc)}"
        result["latency_ms"] = int((time.perf_counter() - started) * 1000)
        return result

    @staticmethod
    def _apply(job: Job, result: dict[str, Any]) -> None:
        for name, value in result.items():
            setattr(job, name, value)

    # -- outcomes -----------------------------------------------------------------------
    def _settle(self, job: Job) -> None:
        if job.outcome is None:
            return  # no attempt: skipped / disabled / deferred, already decided
        if job.outcome == retry.SUCCEEDED:
            job.status, job.error = "succeeded", None
        elif job.outcome == retry.RETRY:
            delay = self.policy.next_delay(job.round_attempt, job.retry_after)
            if delay is None:
                job.status = "failed"
                job.error = f"{job.error}; gave up after {job.round_attempt} attempt(s)"
            else:
                job.status, job.delay, job.next_attempt = "retrying", delay, job.attempt + 1
        else:  # failed (4xx), disabled (410), refused (SSRF)
            job.status = "failed"

    def _write(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        now = datetime.now(timezone.utc)
        rows, attempts = [], []
        successes: set[tuple[str, str]] = set()
        failures: dict[tuple[str, str], int] = {}
        disabled: set[tuple[str, str]] = set()
        for job in jobs:
            rows.append({
                "id": job.delivery_id, "event_id": job.event_id, "session_id": job.session_id,
                "session_uid": job.session_uid, "event": job.event,
                "url": job.url, "status": job.status,
                # an attempt that was not made (deferred, skipped, endpoint disabled) is not counted
                "attempt": job.attempt if (job.outcome or job.handed_off) else job.attempt - 1,
                "round_attempt": job.round_attempt if (job.outcome or job.handed_off) else job.round_attempt - 1,
                "http_status": job.http_status, "latency_ms": job.latency_ms,
                "response_excerpt": job.excerpt, "error": (job.error or None) and job.error[:1000],
                "payload": job.payload,
                "next_attempt_at": (now + timedelta(seconds=job.delay) if job.delay is not None else
                                    now + timedelta(seconds=self.timeout) if job.handed_off else None),
                "last_attempt_at": job.attempted_at, "enqueued_at": job.enqueued_at, "target": job.target,
            })
            if job.outcome:
                attempts.append({
                    "delivery_id": job.delivery_id, "attempt": job.attempt, "at": job.attempted_at,
                    "outcome": job.outcome if job.outcome != retry.RETRY or job.status == "retrying" else retry.FAILED,
                    "http_status": job.http_status, "latency_ms": job.latency_ms,
                    "response_excerpt": job.excerpt, "error": (job.error or None) and job.error[:1000]})
                if job.outcome == retry.SUCCEEDED:
                    successes.add(job.endpoint)
                elif job.outcome == retry.RETRY or job.probe and job.outcome in (retry.FAILED, retry.REFUSED):
                    failures[job.endpoint] = failures.get(job.endpoint, 0) + 1  # a failed probe always reopens
                elif job.outcome == retry.DISABLED:
                    disabled.add(job.endpoint)
        opened: set[tuple[str, str]] = set()
        recovered: set[tuple[str, str]] = set()
        with self.db.connection() as conn, conn.transaction():
            self.repo.write_outcomes(conn, rows, attempts)
            for endpoint in disabled:
                self.repo.disable(conn, endpoint, f"HTTP 410 Gone at {now.isoformat(timespec='seconds')}")
            for endpoint, count in failures.items():
                if endpoint in disabled:
                    continue
                if endpoint in successes:
                    self.repo.record_success(conn, endpoint)
                    recovered.add(endpoint)
                elif self.repo.record_failures(conn, endpoint, count, self.breaker.threshold) == "open":
                    opened.add(endpoint)
            for endpoint in successes - set(failures) - disabled:
                cached = self._endpoints.get(endpoint)
                if cached is None or cached[0] <= time.monotonic():  # not known healthy: reset it
                    self.repo.record_success(conn, endpoint)
                    recovered.add(endpoint)
        for endpoint in set(failures) | disabled:
            self._invalidate(endpoint)
        self._after_breaker_changes(opened, recovered, disabled)
        if self._observe is not None:
            self._observe([job.status for job in jobs],
                          [float(job.latency_ms) for job in jobs if job.outcome and job.latency_ms is not None],
                          len(opened))

    def _after_breaker_changes(self, opened: set[tuple[str, str]], recovered: set[tuple[str, str]],
                               disabled: set[tuple[str, str]] = frozenset()) -> None:
        """An opened breaker gets its probe timer; a recovered endpoint gets its parked deliveries back."""
        for endpoint in disabled:
            self.repo.fail_parked(endpoint, "endpoint disabled (HTTP 410 Gone)")
        messages = [probe_message(endpoint, self.breaker.cooldown) for endpoint in sorted(opened)]
        for endpoint in sorted(recovered):
            messages += [delivery_message(str(r["id"]), r["attempt"] + 1, 0)
                         for r in self.repo.release_parked(endpoint)]
        if messages:
            send_delivery_messages(self.sqs, self._events_url(), messages)

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


def _parse(record: dict[str, Any]) -> tuple[str, Any]:
    try:
        body = json.loads(record.get("body") or "")
    except (TypeError, ValueError):
        return "poison", None
    if not isinstance(body, dict):
        return "poison", None
    if body.get("type") == PROBE_MESSAGE:
        ok = all(isinstance(body.get(k), str) and body[k] for k in ("url", "session_uid"))
        return ("probe", body) if ok else ("poison", None)
    if body.get("type") == DELIVERY_MESSAGE:
        if isinstance(body.get("delivery_id"), str) and isinstance(body.get("attempt"), int):
            try:
                uuid.UUID(body["delivery_id"])
                return "delivery", body
            except ValueError:
                return "poison", None
        return "poison", None
    if all(isinstance(body.get(k), str) for k in ("id", "session_id", "event")):
        try:
            uuid.UUID(body["id"])
        except ValueError:
            return "poison", None
        return "event", body
    return "poison", None


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0][:300]
