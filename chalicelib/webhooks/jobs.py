"""Building the jobs of a batch: one `Job` per delivery attempt to make.

From an event envelope: a new delivery (attempt 1) when the event matches its session's
patterns. From a delivery message: the next attempt of a stored delivery (or nothing when
it is gone, done, or the message is a duplicate); a watchdog message turns an attempt whose
outcome never came back into a failed attempt. From a probe message: the oldest delivery
parked behind an open breaker, as its half-open probe.

A record that breaks this code is reported in `failures` (SQS may redeliver it) and never
holds the others back; the database being down raises (the whole batch comes back).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chalicelib.repositories.webhooks import FINAL_STATUSES, WebhookRepository
from chalicelib.webhooks import breaker, retry
from chalicelib.webhooks.endpoints import EndpointStates
from chalicelib.webhooks.messages import delivery_id_for, probe_message
from chalicelib.webhooks.routes import SessionRoutes, pattern_matches

Pair = tuple[dict[str, Any], dict[str, Any]]  # (SQS record, parsed body)


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

    @classmethod
    def from_row(cls, record_id: str, row: dict[str, Any], **overrides: Any) -> "Job":
        """The next attempt of a stored delivery."""
        fields = dict(record_id=record_id, delivery_id=str(row["id"]), event_id=str(row["event_id"]),
                      session_id=row["session_id"], session_uid=str(row["session_uid"]), event=row["event"],
                      url=row["url"], payload=row["payload"], attempt=row["attempt"] + 1,
                      round_attempt=row["round_attempt"] + 1, target=row["target"],
                      enqueued_at=row["enqueued_at"], age=float(row["age"] or 0))
        return cls(**{**fields, **overrides})


class JobBuilder:
    def __init__(self, *, repo: WebhookRepository, routes: SessionRoutes, endpoints: EndpointStates,
                 policy: retry.RetryPolicy, breaker_config: breaker.BreakerConfig, logger: Any = None):
        self.repo = repo
        self.routes = routes
        self.endpoints = endpoints
        self.policy = policy
        self.breaker: breaker.BreakerConfig = breaker_config
        self.logger = logger

    # -- event envelopes ----------------------------------------------------------------
    def for_events(self, events: list[Pair], failures: list[str]) -> list[Job]:
        if not events:
            return []
        owners = self._owners([body for _, body in events])
        configs = self.routes.configs(set(owners.values()))
        jobs: list[Job] = []
        redelivered: list[Job] = []
        for record, envelope in events:
            try:
                job = _job_for_event(record, envelope, owners.get(envelope["id"]), configs)
                if job is not None:
                    jobs.append(job)
                    if int(record.get("attributes", {}).get("ApproximateReceiveCount", "1")) > 1:
                        redelivered.append(job)
            except Exception:  # noqa: BLE001 - one odd record must not hold the others back
                failures.append(record["messageId"])
        self._resume_redelivered(redelivered)
        return [j for j in jobs if j.status != "done"]

    def _resume_redelivered(self, redelivered: list[Job]) -> None:
        """An SQS redelivery after a crash: do not redo what is done or scheduled."""
        if not redelivered:
            return
        existing = self.repo.deliveries_by_key([(j.event_id, j.url) for j in redelivered])
        for job in redelivered:
            row = existing.get((job.event_id, job.url))
            if row is None:
                continue
            if row["status"] in FINAL_STATUSES or row["status"] in ("retrying", "delivering"):
                job.status = "done"
            else:
                job.attempt, job.round_attempt = row["attempt"] + 1, row["round_attempt"] + 1

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

    # -- delivery messages --------------------------------------------------------------
    def for_deliveries(self, deliveries: list[Pair], failures: list[str]) -> list[Job]:
        if not deliveries:
            return []
        rows = self.repo.deliveries_by_id([body["delivery_id"] for _, body in deliveries])
        configs = self.routes.configs({str(row["session_uid"]) for row in rows.values()})
        jobs: list[Job] = []
        for record, body in deliveries:
            try:
                job = _job_for_delivery(record, body, rows.get(body["delivery_id"]), configs)
            except Exception:  # noqa: BLE001 - one odd record must not hold the others back
                failures.append(record["messageId"])
                continue
            if job is not None:
                jobs.append(job)
        return jobs

    # -- probe messages -----------------------------------------------------------------
    def for_probes(self, probes: list[dict[str, Any]], followups: list[dict[str, Any]]) -> list[Job]:
        jobs: list[Job] = []
        for endpoint in sorted({(p["session_uid"], p["url"]) for p in probes}):
            job = self._probe(endpoint, followups)
            if job is not None:
                jobs.append(job)
        return jobs

    def _probe(self, endpoint: tuple[str, str], followups: list[dict[str, Any]]) -> Job | None:
        expired = self.repo.expire_parked(endpoint, self.policy.max_age)
        if expired and self.logger:
            self.logger.warning("parked webhook deliveries expired", extra={"url": endpoint[1], "count": expired})
        if not self.repo.claim_probe(endpoint, self.breaker.cooldown, self.breaker.probe_timeout):
            return None  # closed meanwhile, disabled, or another dispatcher is probing
        self.endpoints.invalidate(endpoint)
        row = self.repo.oldest_parked(endpoint)
        if row is None:
            self.repo.enable(endpoint)  # nothing waits for it: give it a fresh start
            return None
        job = Job.from_row("probe", row)
        check_session(job, row, self.routes.configs({job.session_uid}).get(job.session_uid))
        if job.status != "pending":  # not sendable: the next parked one probes after probe_timeout
            followups.append(probe_message(endpoint, self.breaker.probe_timeout))
        job.probe = True
        return job


def _job_for_event(record: dict[str, Any], envelope: dict[str, Any], owner: str | None,
                   configs: dict[str, dict[str, Any]]) -> Job | None:
    config = configs.get(owner) if owner else None
    if not config or not config["webhook_url"] or not config["secrets"]:
        return None
    if not pattern_matches(config["webhook_events"], envelope["event"]):
        return None
    url = config["webhook_url"]
    return Job(record_id=record["messageId"], delivery_id=delivery_id_for(envelope["id"], url),
               event_id=envelope["id"], session_id=envelope["session_id"], session_uid=str(owner),
               event=envelope["event"], url=url, payload=envelope, attempt=1, round_attempt=1,
               enqueued_at=_parse_time(envelope.get("timestamp")), secrets=config["secrets"])


def _job_for_delivery(record: dict[str, Any], body: dict[str, Any], row: dict[str, Any] | None,
                      configs: dict[str, dict[str, Any]]) -> Job | None:
    if body.get("watchdog"):
        if row is not None and row["status"] == "delivering" and row["attempt"] == int(body["attempt"]):
            return lost_attempt(record, row)
        return None
    if row is None or row["status"] in FINAL_STATUSES or row["attempt"] >= int(body["attempt"]):
        return None  # gone, done, or a duplicate of a message already handled
    job = Job.from_row(record["messageId"], row)
    check_session(job, row, configs.get(job.session_uid))
    return job


def check_session(job: Job, row: dict[str, Any], config: dict[str, Any] | None) -> None:
    """A stored delivery is sent only while its session still routes to its URL."""
    if config is None:
        job.status, job.error = "skipped", "the session was deleted"
    elif not config["secrets"]:
        job.status, job.error = "skipped", "the session has no webhook secret"
    elif job.target == "session" and config["webhook_url"] != row["url"]:
        job.status, job.error = "skipped", "the session's webhook URL changed"
    else:
        job.secrets = config["secrets"]


def lost_attempt(record: dict[str, Any], row: dict[str, Any]) -> Job:
    """An attempt whose outcome never came back (its dispatcher stopped): counted as a failure."""
    return Job.from_row(record["messageId"], row, attempt=row["attempt"], round_attempt=row["round_attempt"],
                        status="lost", outcome=retry.RETRY, attempted_at=row["last_attempt_at"],
                        error="the attempt's outcome was lost (its dispatcher stopped)")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
