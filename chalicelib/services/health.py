"""`/health` and `/ready`: what is up, named check by check, answered within a bound.

/health (liveness plus the seed's shape): database, whatsapp_manager (a runner
heartbeat within the lease TTL), webhook_service (the events queue answers), and the
number of active sessions. /ready adds what must hold before traffic is sent: every
migration applied, every queue of the messaging stack reachable, the events DLQ depth.
Either answers 503 when something is down. /ready is public (load balancers call it), so
anyone gets the overall state only; which checks failed and why, with queue names and
depths, goes only to the admin (`detailed=True`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib.config import Settings
from chalicelib.db import Database
from chalicelib.db import migrator
from chalicelib.queues import QueueDirectory
from chalicelib.repositories.runners import RunnerRepository
from chalicelib.repositories.sessions import SessionRepository

ACTIVE_STATUSES = ("connecting", "connected", "authenticated")


@dataclass
class CheckResult:
    ok: bool
    detail: Any = "ok"


@dataclass
class HealthAnswer:
    """`ok`: every check passed (the view answers 200, else 503)."""
    ok: bool
    body: dict[str, Any]


class HealthService:
    def __init__(self, settings: Settings, db: Database, queues: QueueDirectory,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.db = db
        self.queues = queues
        self.runners = RunnerRepository(db)
        self.sessions = SessionRepository(db)
        self.clock = clock

    # -- individual checks; each returns a CheckResult and never raises --------------
    def check_database(self) -> CheckResult:
        try:
            self.db.ping()
            return CheckResult(True)
        except Exception as exc:  # noqa: BLE001 - a health check reports, it does not raise
            return CheckResult(False, _describe(exc))

    def check_migrations(self) -> CheckResult:
        try:
            with self.db.connection() as conn:
                missing = migrator.pending(conn)
            if missing:
                return CheckResult(False, "pending: " + ", ".join(f"{m.version:04d}_{m.name}" for m in missing))
            return CheckResult(True)
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, _describe(exc))

    def check_runner(self) -> CheckResult:
        try:
            live = self.runners.live(self.settings.runner_lease_ttl)
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, _describe(exc))
        if not live:
            return CheckResult(False, "no runner heartbeat within "
                               f"{self.settings.runner_lease_ttl:g}s")
        return CheckResult(True, {"live_runners": len(live)})

    def check_events_queue(self) -> CheckResult:
        try:
            depth = self._depth(self.queues.events_url)
            return CheckResult(True, {"depth": depth})
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, _describe(exc))

    def check_queues(self) -> CheckResult:
        depths: dict[str, int] = {}
        try:
            for name in self.queues.all_names():
                depths[name] = self._depth(self.queues.url(name))
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, _describe(exc))
        return CheckResult(True, depths)

    def check_events_dlq(self) -> CheckResult:
        try:
            depth = self._depth(self.queues.events_dlq_url)
        except Exception as exc:  # noqa: BLE001
            return CheckResult(False, _describe(exc))
        if depth:
            return CheckResult(False, f"{depth} message(s) in {self.settings.events_dlq_name}")
        return CheckResult(True)

    def active_sessions(self) -> int | None:
        try:
            counts = self.sessions.count_by_status()
        except Exception:  # noqa: BLE001
            return None
        return sum(counts.get(status, 0) for status in ACTIVE_STATUSES)

    def _depth(self, url: str) -> int:
        attrs = self.queues.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs.get("ApproximateNumberOfMessages", 0))

    # -- the two answers --------------------------------------------------------------
    def health(self) -> HealthAnswer:
        database = self.check_database()
        runner = self.check_runner() if database.ok else CheckResult(False, "database unavailable")
        events = self.check_events_queue()
        checks = {
            "database": _render(database),
            "whatsapp_manager": _render(runner),
            "webhook_service": _render(events),
            "active_sessions": self.active_sessions() if database.ok else None,
        }
        failing = [name for name, result in
                   (("database", database), ("whatsapp_manager", runner), ("webhook_service", events))
                   if not result.ok]
        body = {
            "status": "ok" if not failing else "unavailable",
            "timestamp": int(self.clock()),
            "version": self.settings.version,
            "checks": checks,
        }
        if failing:
            body["failing"] = failing
        return HealthAnswer(not failing, body)

    def ready(self, *, detailed: bool = False) -> HealthAnswer:
        database = self.check_database()
        results = {
            "database": database,
            "migrations": self.check_migrations() if database.ok else CheckResult(False, "database unavailable"),
            "queues": self.check_queues(),
            "events_dlq": self.check_events_dlq(),
            "runner": self.check_runner() if database.ok else CheckResult(False, "database unavailable"),
        }
        failing = [name for name, result in results.items() if not result.ok]
        body: dict[str, Any] = {"ready": not failing, "timestamp": int(self.clock())}
        if detailed:
            body["services"] = {name: result.ok for name, result in results.items()}
            body["details"] = {name: result.detail for name, result in results.items()}
            if failing:
                body["failing"] = failing
        return HealthAnswer(not failing, body)


def _render(result: CheckResult) -> Any:
    if result.ok:
        return "ok"
    return f"error: {result.detail}"


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    return message.strip().splitlines()[0][:300]
