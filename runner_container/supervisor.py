"""The runner supervisor: registration, shard leases, command pollers, reconciliation.

Loop (every RUNNER_HEARTBEAT_INTERVAL): heartbeat; renew/balance/claim shard leases
(`leases.py`); for each shard gained, run its backlog of commands straight from the
`commands` table (those a dead runner left, or SQS still holds invisible), start a
long-poll thread on its SQS FIFO queue and reconcile its sessions; for each shard lost,
stop its poller and its session actors. Every RUNNER_RECONCILE_INTERVAL: reconcile every
session of the owned shards to `desired_state`, run stale commands, resend commands SQS
never took (the sweeper) and flush the events outbox.

Commands run in order per session because a session's messages share one FIFO group
(SQS hands the next one only after the previous is deleted) and one actor inbox; they
run once because the actor claims the row (`queued` -> `running`) before executing.

On SIGTERM: pollers stop, actors close their clients, leases are released and the runner
row is marked stopped, so another runner takes over at once rather than after the TTL.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping

from chalicelib.aws_clients import make_client
from chalicelib.bootstrap import Container
from chalicelib.config import parse_duration
from chalicelib.errors import DependencyUnavailable
from chalicelib.queues import shard_for
from chalicelib.repositories.commands import CommandRepository
from chalicelib.repositories.message_log import MessageLogRepository
from chalicelib.repositories.runners import RunnerRepository
from runner_container.acker import SqsAcker
from runner_container.drivers import make_driver
from runner_container.event_sender import EventSender
from runner_container.inbound_media import InboundMedia, sweep_abandoned
from runner_container.leases import LeaseManager
from runner_container.metrics import MetricsServer, RunnerMetrics
from runner_container.session import Backoff, SessionActor
from runner_container.sessions_metric import SessionsMetricPublisher


def shard_sql(column: str, shards: int) -> str:
    """`chalicelib.queues.shard_for` in SQL: the first 8 bytes of sha256 as a 64-bit integer,
    mod a power of two = its low bits (two's complement keeps them right for negatives)."""
    assert shards & (shards - 1) == 0, "COMMAND_SHARDS must be a power of two"
    return (f"((('x' || substr(encode(sha256(convert_to({column}, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint)"
            f" & {shards - 1})")


def new_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class RunnerOptions:
    """Runner-only tuning (environment): defaults suit production."""

    reconcile_interval: float = 10.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    stale_command_after: float = 5.0
    emulator_qr_rotate: float = 20.0
    poll_wait_seconds: int = 2
    message_log_retention: float = 7 * 86400.0  # replies/reactions to older messages lose their preview
    sessions_metric_interval: float = 60.0  # zemeow/Runner Sessions (runner_container/sessions_metric.py)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RunnerOptions":
        env = os.environ if env is None else env

        def duration(name: str, default: float) -> float:
            raw = env.get(name)
            if not raw:
                return default
            try:
                return parse_duration(raw)
            except ValueError as exc:
                from chalicelib.errors import ConfigError

                raise ConfigError([f"{name}={raw}: {exc}"]) from exc

        return cls(reconcile_interval=duration("RUNNER_RECONCILE_INTERVAL", 10.0),
                   backoff_base=duration("RECONNECT_BACKOFF_BASE", 1.0),
                   backoff_max=duration("RECONNECT_BACKOFF_MAX", 60.0),
                   stale_command_after=duration("COMMAND_STALE_AFTER", 5.0),
                   emulator_qr_rotate=duration("EMULATOR_QR_ROTATE", 20.0),
                   message_log_retention=duration("MESSAGE_LOG_RETENTION", 7 * 86400.0),
                   sessions_metric_interval=duration("SESSIONS_METRIC_INTERVAL", 60.0))


class RunnerSupervisor:
    def __init__(self, container: Container, options: RunnerOptions | None = None):
        self.container = container
        self.settings = container.settings
        self.log = container.logger
        self.db = container.db
        self.options = options or RunnerOptions.from_env()
        self.runner_id = self.settings.runner_id or new_runner_id()
        self.runners = RunnerRepository(container.db)
        self.commands = CommandRepository(container.db)
        self.message_log = MessageLogRepository(container.db)
        self.metrics = RunnerMetrics()
        self.backoff = Backoff(self.options.backoff_base, self.options.backoff_max)
        self.leases = LeaseManager(container.db, self.runner_id, self.settings.command_shards,
                                   self.settings.runner_lease_ttl)
        driver_options = {"port": self.settings.emulator_port, "qr_rotate": self.options.emulator_qr_rotate} \
            if self.settings.whatsapp_driver == "emulator" else {}
        self.driver = make_driver(self.settings.whatsapp_driver, container, **driver_options)
        self.event_sender = EventSender(container.events, self.log)
        self.acker = SqsAcker(container.sqs, self.log)
        self.inbound_media = InboundMedia.for_runner(self)
        self.actors: dict[str, SessionActor] = {}
        self.pollers: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.RLock()
        self._last_tick_ok = 0.0
        self._last_prune = 0.0
        self._stopping = False

    # -- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        info = {"metrics_port": self.settings.metrics_port, **self.driver.info()}
        self.runners.register(self.runner_id, hostname=socket.gethostname(), pid=os.getpid(),
                              version=self.settings.version, driver=self.settings.whatsapp_driver, info=info)
        metrics_server = MetricsServer(self.metrics, self.settings.metrics_port, self.healthz,
                                       host=self.settings.runner_bind_host)
        metrics_server.start()
        sessions_metric = self._sessions_metric()
        sessions_metric.start()
        self.driver.start()
        self.log.info("runner started", extra={"runner_id": self.runner_id, "driver": self.settings.whatsapp_driver,
                                               **info})
        next_reconcile = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                reconcile = now >= next_reconcile
                if reconcile:
                    next_reconcile = now + self.options.reconcile_interval
                self._tick(reconcile)
                stop.wait(self.settings.runner_heartbeat_interval)
        finally:
            sessions_metric.stop()
            self._shutdown()
            metrics_server.stop()

    def _sessions_metric(self) -> SessionsMetricPublisher:
        # its own fail-fast client: one try, short timeouts (never holds a thread for long)
        cloudwatch = make_client("cloudwatch", self.settings, connect_timeout=2, read_timeout=5, max_attempts=2)
        return SessionsMetricPublisher(cloudwatch, self.settings.queue_prefix, self.sessions_held,
                                       interval=self.options.sessions_metric_interval, log=self.log)

    def sessions_held(self) -> int:
        with self._lock:
            return sum(1 for actor in self.actors.values() if not actor.done.is_set())

    def _tick(self, reconcile: bool) -> None:
        try:
            self._beat()
            gained, lost = self.leases.tick()
            for shard in sorted(lost):
                self.log.info("shard lost", extra={"shard": shard})
                self._stop_shard(shard)
            for shard in sorted(gained):
                self.log.info("shard acquired", extra={"shard": shard, "runner_id": self.runner_id})
                # restore the sessions first, so that commands left from the gap find them (re)connecting
                self._reconcile({shard})
                self._run_backlog({shard}, stale_after=None)
                self._start_poller(shard)
            self.metrics.shards.set(len(self.leases.owned))
            if reconcile:
                owned = set(self.leases.owned)
                if owned:
                    self._reconcile(owned - gained)
                    self._run_backlog(owned, stale_after=self.options.stale_command_after)
                self.container.commands.sweep(older_than_seconds=self.options.stale_command_after)
                self.container.events.flush_pending()
                self._prune_message_log()
                abandoned = sweep_abandoned(self)
                if abandoned:
                    self.log.warning("received media abandoned by a dead runner; events written without it",
                                     extra={"messages": abandoned})
            self._update_session_gauge()
            self._last_tick_ok = time.monotonic()
        except DependencyUnavailable as exc:
            self.log.warning("runner tick failed", extra={"reason": exc.message})
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything
            self.log.exception("runner tick failed", extra={"error": str(exc)[:300]})

    def _prune_message_log(self, every: float = 600.0) -> None:
        if time.monotonic() - self._last_prune < every:
            return
        self._last_prune = time.monotonic()
        pruned = self.message_log.prune(self.options.message_log_retention)
        if pruned:
            self.log.info("message log pruned", extra={"rows": pruned})

    def _beat(self) -> None:
        if not self.runners.heartbeat(self.runner_id):
            self.log.warning("heartbeat row missing; registering again", extra={"runner_id": self.runner_id})
            self.runners.register(self.runner_id, hostname=socket.gethostname(), pid=os.getpid(),
                                  version=self.settings.version, driver=self.settings.whatsapp_driver,
                                  info={"metrics_port": self.settings.metrics_port, **self.driver.info()})

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self._last_tick_ok if self._last_tick_ok else None
        bound = max(3 * self.settings.runner_heartbeat_interval, self.settings.runner_lease_ttl)
        ok = age is not None and age < bound and not self._stopping
        return ok, {"runner_id": self.runner_id, "last_tick_seconds_ago": None if age is None else round(age, 3),
                    "shards": sorted(self.leases.owned), "sessions": len(self.actors)}

    def _shutdown(self) -> None:
        self._stopping = True
        # let every poller finish its current long poll: a ReceiveMessage abandoned mid-wait
        # can still take the next message, which then stays invisible for the visibility timeout
        pollers = list(self.pollers)
        for shard in pollers:
            self.pollers[shard][1].set()
        for shard in pollers:
            self._stop_poller(shard, wait=True)
        with self._lock:
            actors = list(self.actors.values())
        for actor in actors:
            actor.post("stop", True)
        for actor in actors:
            actor.done.wait(15)
        self.inbound_media.close()
        self.event_sender.close()
        self.acker.close()
        try:
            self.leases.release()
        except Exception as exc:  # noqa: BLE001
            self.log.warning("could not release leases", extra={"reason": str(exc)[:200]})
        try:
            self.runners.mark_stopped(self.runner_id)
        except DependencyUnavailable as exc:
            self.log.warning("could not mark runner stopped", extra={"reason": exc.message})
        self.driver.stop()

    # -- shards -------------------------------------------------------------------------
    def owns(self, session_id: str) -> bool:
        return shard_for(session_id, self.settings.command_shards) in self.leases.owned

    def _start_poller(self, shard: int) -> None:
        stop = threading.Event()
        thread = threading.Thread(target=self._poll, args=(shard, stop), name=f"poller-{shard}", daemon=True)
        self.pollers[shard] = (thread, stop)
        thread.start()

    def _stop_poller(self, shard: int, wait: bool = True) -> None:
        entry = self.pollers.pop(shard, None)
        if entry:
            entry[1].set()
            if wait:
                entry[0].join(timeout=self.options.poll_wait_seconds + 5)

    def _stop_shard(self, shard: int) -> None:
        self._stop_poller(shard)
        with self._lock:
            actors = [a for sid, a in self.actors.items()
                      if shard_for(sid, self.settings.command_shards) == shard]
        for actor in actors:
            actor.stop(graceful=False)

    def _poll(self, shard: int, stop: threading.Event) -> None:
        sqs = self.container.sqs
        url = self.container.queues.command_url(shard)
        while not stop.is_set():
            try:
                answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=self.options.poll_wait_seconds,
                                             AttributeNames=["SentTimestamp"])
            except Exception as exc:  # noqa: BLE001 - SQS down: back off, the DB backlog scan covers us
                self.log.warning("command poll failed", extra={"shard": shard, "reason": str(exc)[:200]})
                stop.wait(2.0)
                continue
            for message in answer.get("Messages", []):
                sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", 0) or 0)
                if sent_ms:
                    self.metrics.queue_lag.observe(max(0.0, time.time() - sent_ms / 1000))
                receipt = message["ReceiptHandle"]
                try:
                    body = json.loads(message["Body"])
                    command_id, session_id = body["command_id"], body["session_id"]
                except (ValueError, KeyError):
                    self.log.error("malformed command message dropped", extra={"shard": shard})
                    self._delete(url, receipt)
                    continue
                actor = self.actor_for(session_id)
                actor.post_command(command_id, lambda u=url, r=receipt: self._delete(u, r))

    def _delete(self, url: str, receipt: str) -> None:
        self.acker.ack(url, receipt)  # batched, off the caller's thread (runner_container/acker.py)

    # -- sessions -----------------------------------------------------------------------
    def actor_for(self, session_id: str) -> SessionActor:
        with self._lock:
            actor = self.actors.get(session_id)
            if actor is None or actor.done.is_set():
                actor = self.actors[session_id] = SessionActor(self, session_id).start()
            return actor

    def actor_finished(self, actor: SessionActor) -> None:
        with self._lock:
            if self.actors.get(actor.session_id) is actor:
                del self.actors[actor.session_id]

    def _sessions_of(self, shards: set[int]) -> list[dict[str, Any]]:
        n = self.settings.command_shards
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT id, session_id, jid, status, desired_state, auto_reconnect FROM sessions "
                f"WHERE {shard_sql('session_id', n)} = ANY(%s)", (sorted(shards),)).fetchall()

    def _reconcile(self, shards: set[int]) -> None:
        if not shards:
            return
        rows = self._sessions_of(shards)
        present = {r["session_id"] for r in rows}
        for row in rows:
            held = row["session_id"] in self.actors
            needs = row["desired_state"] == "connected" or row["status"] != "disconnected" or held
            if needs:
                self.actor_for(row["session_id"]).post("reconcile", None if held else row)
        with self._lock:
            orphans = [a for sid, a in self.actors.items()
                       if shard_for(sid, self.settings.command_shards) in shards and sid not in present]
        for actor in orphans:  # the session row is gone: drop its client
            actor.post("reconcile", None)

    def _run_backlog(self, shards: set[int], stale_after: float | None) -> None:
        """Commands of these shards still queued (or left running by a dead runner), oldest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                f"""
                SELECT c.id, c.session_id FROM commands c
                WHERE (c.status = 'queued' OR (c.status = 'running' AND NOT EXISTS (
                        SELECT 1 FROM runners r WHERE r.id = c.runner_id AND r.stopped_at IS NULL
                          AND r.heartbeat_at > now() - make_interval(secs => %s))))
                  AND c.created_at < now() - make_interval(secs => %s)
                  AND {shard_sql('c.session_id', self.settings.command_shards)} = ANY(%s)
                ORDER BY c.created_at LIMIT 2000
                """, (self.settings.runner_lease_ttl, stale_after or 0, sorted(shards))).fetchall()
        for row in rows:
            self.actor_for(row["session_id"]).post_command(str(row["id"]), lambda: None)

    def _update_session_gauge(self) -> None:
        counts: dict[str, int] = {}
        with self._lock:
            for actor in self.actors.values():
                if actor.status:
                    counts[actor.status] = counts.get(actor.status, 0) + 1
        self.metrics.set_sessions(counts)

    # -- commands (used by the actors) --------------------------------------------------
    def claim(self, command_id: str, session_uid: str | None = None) -> dict[str, Any] | None:
        return self.commands.claim(command_id, self.runner_id, self.settings.runner_lease_ttl,
                                   session_uid=session_uid)

    def finish(self, row: dict[str, Any], *, ok: bool, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> None:
        self.commands.finish(str(row["id"]), ok=ok, result=result, error=error)
        self.metrics.commands.labels(type=row["type"], outcome="succeeded" if ok else "failed").inc()
        created = row.get("created_at")
        if created is not None:
            self.metrics.command_latency.labels(type=row["type"]).observe(
                max(0.0, time.time() - created.timestamp()))
