"""The runner supervisor: registration, shard leases, command pollers, reconciliation.

Loop (every RUNNER_HEARTBEAT_INTERVAL): heartbeat; check the lifeline (`lifeline.py`: the
advisory lock that makes a killed runner dead for the others at once); renew/balance/claim shard leases
(`leases.py`); for each shard gained, run its backlog of commands straight from the
`commands` table (those a dead runner left, or SQS still holds invisible), start a
long-poll thread on its SQS FIFO queue and reconcile its sessions; for each shard lost,
stop its poller and its session actors. Every RUNNER_RECONCILE_INTERVAL: reconcile every
session of the owned shards to `desired_state`, run stale commands, resend commands SQS
never took (the sweeper) and flush the events outbox.

Commands run in order per session because a session's messages share one FIFO group
(SQS hands the next one only after the previous is deleted) and one actor inbox, and the
claim refuses a command while an older one of its session is queued (those run first);
they run once because the actor claims the row (`queued` -> `running`) before executing.
The doorbell (`doorbell.py`: LISTEN for new rows) brings most commands before SQS does.

On SIGTERM: pollers stop, actors close their clients, leases are released and the runner
row is marked stopped, so another runner takes over at once rather than after the TTL.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import DependencyUnavailable
from chalicelib.queues import shard_for
from runner_container.doorbell import CommandDoorbell
from runner_container.inbound_media import sweep_abandoned
from runner_container.metrics import MetricsServer
from runner_container.ports import ActorRegistry, SessionPorts


@dataclass
class RunnerParts:
    """What `runner_container/bootstrap.py` builds for the supervisor."""

    container: Any  # chalicelib.bootstrap.Container (settings, sqs, queues, commands outbox, events)
    ports: SessionPorts  # what the actors and the media worker share
    actors: ActorRegistry
    runners: Any  # RunnerRepository
    leases: Any  # LeaseManager
    lifeline: Any  # Lifeline
    shards: Any  # ShardRepository
    acker: Any  # SqsAcker
    sessions_metric: Any  # SessionsMetricPublisher (zemeow/Runner Sessions, every SESSIONS_METRIC_INTERVAL)


POLL_WAIT_SECONDS = 2  # an SQS long poll; a stop waits for the current one to end


class RunnerSupervisor:
    def __init__(self, parts: RunnerParts):
        self.container = parts.container
        self.settings = parts.container.settings
        self.ports = parts.ports
        self.log = parts.ports.log
        self.runner_id = parts.ports.settings.runner_id
        self.runners = parts.runners
        self.leases = parts.leases
        self.lifeline = parts.lifeline
        self.shards = parts.shards
        self.acker = parts.acker
        self.sessions_metric = parts.sessions_metric
        self.actors = parts.actors
        self.metrics = parts.ports.metrics
        self.driver = parts.ports.driver
        self.pollers: dict[int, tuple[threading.Thread, threading.Event]] = {}
        self._last_tick_ok = 0.0
        self._stopping = False
        self.doorbell = CommandDoorbell(self.container.db, self._doorbell, self.log)

    # -- lifecycle ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        info = {"metrics_port": self.settings.metrics_port, **self.driver.info()}
        self.runners.register(self.runner_id, hostname=socket.gethostname(), pid=os.getpid(),
                              version=self.settings.version, driver=self.settings.whatsapp_driver, info=info)
        metrics_server = MetricsServer(self.metrics, self.settings.metrics_port, self.healthz,
                                       host=self.settings.runner_bind_host)
        metrics_server.start()
        self.sessions_metric.start()
        self.driver.start()
        self.doorbell.start()
        self.log.info("runner started", extra={"runner_id": self.runner_id, "driver": self.settings.whatsapp_driver,
                                               **info})
        next_reconcile = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                reconcile = now >= next_reconcile
                if reconcile:
                    next_reconcile = now + self.settings.runner_reconcile_interval
                self._tick(reconcile)
                stop.wait(self.settings.runner_heartbeat_interval)
        finally:
            self.sessions_metric.stop()
            self._shutdown()
            metrics_server.stop()

    def _tick(self, reconcile: bool) -> None:
        try:
            self._beat()
            self.lifeline.ensure()
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
                    self._run_backlog(owned, stale_after=self.settings.command_stale_after)
                self.container.commands.sweep(older_than_seconds=self.settings.command_stale_after)
                self.container.events.flush_pending()
                abandoned = sweep_abandoned(self.ports)
                if abandoned:
                    self.log.warning("received media abandoned by a dead runner; events written without it",
                                     extra={"messages": abandoned})
            self._update_session_gauge()
            self._last_tick_ok = time.monotonic()
        except DependencyUnavailable as exc:
            self.log.warning("runner tick failed", extra={"reason": exc.message})
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything
            self.log.exception("runner tick failed", extra={"error": str(exc)[:300]})

    def _beat(self) -> None:
        if not self.runners.heartbeat(self.runner_id):
            self.log.warning("heartbeat row missing; registering again", extra={"runner_id": self.runner_id})
            self.runners.register(self.runner_id, hostname=socket.gethostname(), pid=os.getpid(),
                                  version=self.settings.version, driver=self.settings.whatsapp_driver,
                                  info={"metrics_port": self.settings.metrics_port, **self.driver.info()})
            self.lifeline.close()  # the new row names no lifeline: take one again (ensure, next)

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self._last_tick_ok if self._last_tick_ok else None
        bound = max(3 * self.settings.runner_heartbeat_interval, self.settings.runner_lease_ttl)
        ok = age is not None and age < bound and not self._stopping
        return ok, {"runner_id": self.runner_id, "last_tick_seconds_ago": None if age is None else round(age, 3),
                    "shards": sorted(self.leases.owned), "sessions": len(self.actors)}

    def _shutdown(self) -> None:
        self._stopping = True
        self.doorbell.stop()
        # let every poller finish its current long poll: a ReceiveMessage abandoned mid-wait
        # can still take the next message, which then stays invisible for the visibility timeout
        pollers = list(self.pollers)
        for shard in pollers:
            self.pollers[shard][1].set()
        for shard in pollers:
            self._stop_poller(shard, wait=True)
        actors = self.actors.all()
        for actor in actors:
            actor.post("stop", True)
        for actor in actors:
            actor.done.wait(15)
        self.ports.media.close()
        self.ports.events.close()
        self.acker.close()
        try:
            self.leases.release()
        except Exception as exc:  # noqa: BLE001
            self.log.warning("could not release leases", extra={"reason": str(exc)[:200]})
        try:
            self.runners.mark_stopped(self.runner_id)
        except DependencyUnavailable as exc:
            self.log.warning("could not mark runner stopped", extra={"reason": exc.message})
        self.lifeline.close()
        self.driver.stop()

    # -- shards -------------------------------------------------------------------------
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
                entry[0].join(timeout=POLL_WAIT_SECONDS + 5)

    def _stop_shard(self, shard: int) -> None:
        self._stop_poller(shard)
        actors = [a for a in self.actors.all() if shard_for(a.session_id, self.settings.command_shards) == shard]
        for actor in actors:
            actor.stop(graceful=False)

    def _poll(self, shard: int, stop: threading.Event) -> None:
        sqs = self.container.sqs
        url = self.container.queues.command_url(shard)
        while not stop.is_set():
            try:
                answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=POLL_WAIT_SECONDS,
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
                    command_id, session_id, type = body["command_id"], body["session_id"], body.get("type")
                except (ValueError, KeyError):
                    self.log.error("malformed command message dropped", extra={"shard": shard})
                    self._delete(url, receipt)
                    continue
                actor = self.actor_for(session_id)
                actor.post_command(command_id, lambda u=url, r=receipt: self._delete(u, r), type)

    def _doorbell(self, command_id: str, session_id: str, type: str | None) -> None:
        """A new command (runner_container/doorbell.py): to its actor if this runner polls its shard."""
        if shard_for(session_id, self.settings.command_shards) in self.pollers:
            self.actor_for(session_id).post_command(command_id, lambda: None, type)

    def _delete(self, url: str, receipt: str) -> None:
        self.acker.ack(url, receipt)  # batched, off the caller's thread (runner_container/acker.py)

    # -- sessions -----------------------------------------------------------------------
    def actor_for(self, session_id: str) -> Any:
        return self.actors.actor_for(session_id)

    def _reconcile(self, shards: set[int]) -> None:
        if not shards:
            return
        rows = self.shards.sessions_of(shards)
        present = {r["session_id"] for r in rows}
        for row in rows:
            held = row["session_id"] in self.actors
            needs = row["desired_state"] == "connected" or row["status"] != "disconnected" or held
            if needs:
                self.actor_for(row["session_id"]).post("reconcile", None if held else row)
        orphans = [a for a in self.actors.all()
                   if shard_for(a.session_id, self.settings.command_shards) in shards and a.session_id not in present]
        for actor in orphans:  # the session row is gone: drop its client
            actor.post("reconcile", None)

    def _run_backlog(self, shards: set[int], stale_after: float | None) -> None:
        """Commands of these shards still queued (or left running by a dead runner), oldest first."""
        rows = self.shards.backlog(shards, live_ttl=self.settings.runner_lease_ttl, older_than=stale_after or 0,
                                   runner_id=self.runner_id)
        for row in rows:
            self.actor_for(row["session_id"]).post_command(str(row["id"]), lambda: None, row["type"])

    def _update_session_gauge(self) -> None:
        counts: dict[str, int] = {}
        for actor in self.actors.all():
            if actor.status:
                counts[actor.status] = counts.get(actor.status, 0) + 1
        self.metrics.set_sessions(counts)
