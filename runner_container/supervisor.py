"""The runner supervisor: registration, placement, the command poller, reconciliation.

Loop (every RUNNER_HEARTBEAT_INTERVAL): heartbeat (with the runner's memory and cap);
check the lifeline (`lifeline.py`: the advisory lock that makes a killed runner dead for
the others at once); the placement tick (`placement.py`: claim orphan slots, ask loaded
runners for slots, hand over what others asked for). For slots handed over or lost: stop
their session actors (all at once, then wait), and only then hand the slots over, so a
session never runs on two runners. For slots gained: reconcile their sessions, then run
their backlog of commands straight from the `commands` table. Every
RUNNER_RECONCILE_INTERVAL: reconcile every session held to `desired_state`, run stale
commands, resend commands SQS never took (the sweeper), flush the events outbox, and drain
and delete the queues of runners long gone.

Commands come to the runner's own SQS FIFO queue (`runner_queue.py`; the API sends each to
the queue of the runner holding the session's slot) and, sooner, by the doorbell
(`doorbell.py`: LISTEN for new rows). A command for a slot this runner does not hold is
forwarded to the holder. They run in order per session because a session's messages share
one FIFO group and one actor inbox, and the claim refuses a command while an older one of
its session is queued; they run once because the actor claims the row (`queued` ->
`running`, fenced by placement: only the slot's holder may claim) before executing.

On SIGTERM: the poller stops, actors close their clients, every slot is released and the
runner row is marked stopped, so the others take its sessions over at once.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import DependencyUnavailable
from chalicelib.placement import slot_of
from runner_container.command_poller import CommandPoller
from runner_container.doorbell import CommandDoorbell
from runner_container.inbound_media import sweep_abandoned
from runner_container.metrics import MetricsServer
from runner_container.placement import resident_mb
from runner_container.ports import ActorRegistry, SessionPorts
from runner_container.runner_queue import DEAD_QUEUE_AFTER, RunnerQueue, drain_and_delete


@dataclass
class RunnerParts:
    """What `runner_container/bootstrap.py` builds for the supervisor."""

    container: Any  # chalicelib.bootstrap.Container (settings, sqs, queues, commands outbox, events)
    ports: SessionPorts  # what the actors and the media worker share
    actors: ActorRegistry
    runners: Any  # RunnerRepository
    placement: Any  # PlacementManager
    lifeline: Any  # Lifeline
    slots: Any  # SlotRepository
    queue: RunnerQueue  # this runner's own command queue
    acker: Any  # SqsAcker
    sessions_metric: Any  # SessionsMetricPublisher (zemeow/Runner Sessions, every SESSIONS_METRIC_INTERVAL)


STOP_WAIT_SECONDS = 15.0  # how long a handover waits for its sessions' clients to close


class RunnerSupervisor:
    def __init__(self, parts: RunnerParts):
        self.container = parts.container
        self.settings = parts.container.settings
        self.ports = parts.ports
        self.log = parts.ports.log
        self.runner_id = parts.ports.settings.runner_id
        self.runners = parts.runners
        self.placement = parts.placement
        self.lifeline = parts.lifeline
        self.slots = parts.slots
        self.queue = parts.queue
        self.acker = parts.acker
        self.sessions_metric = parts.sessions_metric
        self.actors = parts.actors
        self.metrics = parts.ports.metrics
        self.driver = parts.ports.driver
        self.poller = CommandPoller(self.container.sqs, self.queue, self._dispatch, ack=self.acker.ack,
                                    republish=self._publish_queue, metrics=self.metrics, log=self.log)
        # Slots whose sessions were reconciled here: only their commands go straight to actors.
        # A slot is in `placement.owned` from the tick's commit, but an actor that got a command
        # before its reconcile would answer `not_connected` instead of (re)connecting and
        # waiting for the login (bench/faults.py scenario 2 at full scale: 45 sends failed).
        # Until then a command is left to the slot's backlog, run right after the reconcile.
        self.ready: frozenset[int] = frozenset()
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
        self.poller.start()  # creates the queue and publishes its URL first
        self.log.info("runner started", extra={"runner_id": self.runner_id, "driver": self.settings.whatsapp_driver,
                                               "queue": self.queue.name, **info})
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
            self._place()
            if reconcile:
                self._reconcile_all()
            self._update_session_gauge()
            self._last_tick_ok = time.monotonic()
        except DependencyUnavailable as exc:
            self.log.warning("runner tick failed", extra={"reason": exc.message})
        except Exception as exc:  # noqa: BLE001 - the loop must survive anything
            self.log.exception("runner tick failed", extra={"error": str(exc)[:300]})

    def _place(self) -> None:
        change = self.placement.tick(resident_mb())
        if change.lost:
            self.log.warning("slots taken over by another runner", extra={"slots": len(change.lost)})
        leaving = change.lost | set(change.handing)
        self.ready = self.ready & frozenset(self.placement.owned)
        if leaving:
            self._stop_slots(leaving)
        if change.handing:
            moved = self.placement.hand_over(sorted(change.handing))
            self.log.info("slots handed over", extra={"slots": moved})
        fresh = set(self.placement.owned) - self.ready  # gained now, or by a tick that failed half-way
        if fresh:
            self.log.info("slots acquired", extra={"slots": len(fresh), "runner_id": self.runner_id})
            # restore the sessions first, so that commands left from the gap find them (re)connecting
            self._reconcile(fresh)
            self.ready = self.ready | fresh
            self._run_backlog(fresh, stale_after=None)
        self.metrics.slots.set(len(self.placement.owned))

    def _reconcile_all(self) -> None:
        owned = set(self.placement.owned)
        if owned:
            self._reconcile(owned)
            self._run_backlog(owned, stale_after=self.settings.command_stale_after)
        self.container.commands.sweep(older_than_seconds=self.settings.command_stale_after)
        self.container.events.flush_pending()
        abandoned = sweep_abandoned(self.ports)
        if abandoned:
            self.log.warning("received media abandoned by a dead runner; events written without it",
                             extra={"messages": abandoned})
        self._reap_dead_queues()

    def _beat(self) -> None:
        rss = resident_mb()
        if not self.runners.heartbeat(self.runner_id, rss_mb=rss, max_sessions=self.placement.cap(rss)):
            self.log.warning("heartbeat row missing; registering again", extra={"runner_id": self.runner_id})
            self.runners.register(self.runner_id, hostname=socket.gethostname(), pid=os.getpid(),
                                  version=self.settings.version, driver=self.settings.whatsapp_driver,
                                  info={"metrics_port": self.settings.metrics_port, **self.driver.info()})
            self.lifeline.close()  # the new row names no lifeline: take one again (ensure, next)
            if self.queue.url:
                self._publish_queue(self.queue.url)

    def _publish_queue(self, url: str) -> None:
        self.runners.set_queue_url(self.runner_id, url)

    def healthz(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self._last_tick_ok if self._last_tick_ok else None
        bound = max(3 * self.settings.runner_heartbeat_interval, self.settings.runner_lease_ttl)
        ok = age is not None and age < bound and not self._stopping
        return ok, {"runner_id": self.runner_id, "last_tick_seconds_ago": None if age is None else round(age, 3),
                    "slots": len(self.placement.owned), "sessions_placed": self.placement.load,
                    "sessions": len(self.actors)}

    def _shutdown(self) -> None:
        self._stopping = True
        self.doorbell.stop()
        self.poller.stop(wait=True)
        self._stop_actors(self.actors.all(), graceful=True)
        self.ports.media.close()
        self.ports.events.close()
        self.acker.close()
        try:
            self.placement.release_all()
        except Exception as exc:  # noqa: BLE001
            self.log.warning("could not release slots", extra={"reason": str(exc)[:200]})
        try:
            self.runners.mark_stopped(self.runner_id)
        except DependencyUnavailable as exc:
            self.log.warning("could not mark runner stopped", extra={"reason": exc.message})
        self.lifeline.close()
        self.driver.stop()

    # -- slots --------------------------------------------------------------------------
    def _stop_slots(self, slots: set[int]) -> None:
        """Stop the sessions of `slots` (a handover) and wait until their clients are closed."""
        self._stop_actors([a for a in self.actors.all() if slot_of(a.session_id) in slots], graceful=False)

    @staticmethod
    def _stop_actors(actors: list[Any], *, graceful: bool) -> None:
        """Stop these sessions all at once, then wait for them, STOP_WAIT_SECONDS in all (the
        shutdown used to wait up to 15 s for each in turn). `stopping` first: a write held
        while the database is down gives up after its grace instead of holding the stop."""
        for actor in actors:
            actor.stopping.set()
            actor.post("stop", graceful)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for actor in actors:
            actor.done.wait(max(0.0, deadline - time.monotonic()))

    def _dispatch(self, body: dict[str, Any], ack: Any) -> None:
        """A command message from this runner's queue: run it here, forward it, or drop it."""
        session_id = body["session_id"]
        if slot_of(session_id) in self.ready:
            self.actor_for(session_id).post_command(body["command_id"], ack, body.get("type"))
            return
        try:
            holder = self.queue.forward(self._route, self.runner_id, body)
        except Exception as exc:  # noqa: BLE001 - left for a redelivery; the table's backlog covers it
            self.log.warning("could not forward a command", extra={"reason": str(exc)[:200]})
            return
        if holder:
            self.metrics.forwarded.inc()
        ack()

    def _route(self, session_id: str) -> tuple[str | None, str | None]:
        return self.placement.repo.queue_url_for_session(session_id, self.settings.runner_lease_ttl)

    def _doorbell(self, command_id: str, session_id: str, type: str | None) -> None:
        """A new command (runner_container/doorbell.py): to its actor if this runner holds its
        slot and has reconciled it (else the slot's backlog brings it)."""
        if slot_of(session_id) in self.ready:
            self.actor_for(session_id).post_command(command_id, lambda: None, type)

    def _reap_dead_queues(self) -> None:
        """Drain (forward) and delete the queues of runners gone for DEAD_QUEUE_AFTER."""
        for row in self.runners.dead_queues(DEAD_QUEUE_AFTER, limit=2):
            try:
                if drain_and_delete(self.container.sqs, row["queue_url"], self._route, self.log):
                    self.runners.mark_queue_deleted(row["id"])
            except Exception as exc:  # noqa: BLE001 - next reconcile tries again
                self.log.warning("could not drain a gone runner's queue", extra={"reason": str(exc)[:200]})

    # -- sessions -----------------------------------------------------------------------
    def actor_for(self, session_id: str) -> Any:
        return self.actors.actor_for(session_id)

    def _reconcile(self, slots: set[int]) -> None:
        if not slots:
            return
        rows = self.slots.sessions_of(slots)
        present = {r["session_id"] for r in rows}
        for row in rows:
            held = row["session_id"] in self.actors
            needs = row["desired_state"] == "connected" or row["status"] != "disconnected" or held
            if needs:
                self.actor_for(row["session_id"]).post("reconcile", None if held else row)
        orphans = [a for a in self.actors.all() if slot_of(a.session_id) in slots and a.session_id not in present]
        for actor in orphans:  # the session row is gone: drop its client
            actor.post("reconcile", None)

    def _run_backlog(self, slots: set[int], stale_after: float | None) -> None:
        """Commands of these slots still queued (or left running by a dead runner), oldest first."""
        rows = self.slots.backlog(slots, live_ttl=self.settings.runner_lease_ttl, older_than=stale_after or 0,
                                  runner_id=self.runner_id)
        for row in rows:
            self.actor_for(row["session_id"]).post_command(str(row["id"]), lambda: None, row["type"])

    def _update_session_gauge(self) -> None:
        counts: dict[str, int] = {}
        for actor in self.actors.all():
            if actor.status:
                counts[actor.status] = counts.get(actor.status, 0) + 1
        self.metrics.set_sessions(counts)
