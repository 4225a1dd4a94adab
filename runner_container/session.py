"""One session on this runner: an actor with its own thread and inbox.

Everything that touches a session (commands from its SQS group, driver callbacks from
whatsmeow's threads, reconciliation, timers for backoff and the QR timeout) goes through
the inbox and is handled one at a time, so the state machine never races itself. Once the
actor has ended its inbox is closed: what is posted after that (the supervisor took the
session's shard back while this actor was stopping) goes to a fresh actor, never into an
inbox nobody reads. What the client reports goes ahead of the waiting commands
(`runner_container/inbox.py`: a received message exists only here until it is written).
A write that records what already happened (a received message, a
send) is held while the database is down (`runner_container/holding.py`). The
machine itself is `runner_container/machine.py` (pure: state + input -> state +
effects); this actor reads what an input needs, steps the machine and performs the
effects: the client, the writes (`SessionStore.apply`, one transaction each: the
`sessions` row, `session_runtime`, the event in the outbox, sent after commit) and the
commands waiting for the login. Commands run through `runner_container/commands.py`.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import replace
from typing import Any, Callable

from chalicelib.repositories.session_store import SessionGone, SessionReplaced, StateChange
from runner_container import behaviour, machine
from runner_container.behaviour import Behaviour
from runner_container.commands import CommandRunner
from runner_container.drivers.base import DriverError, SessionClient, SessionConfig
from runner_container.holding import Holder
from runner_container.inbox import Inbox
from runner_container.machine import SessionState
from runner_container.ports import SessionPorts

__all__ = ["SessionActor", "SessionGone", "SessionReplaced"]


class SessionActor:
    def __init__(self, ports: SessionPorts, session_id: str, session_uid: str | None = None):
        self.ports = ports
        self.session_id = session_id
        # the row id of the session this actor serves, bound on the first load: every write
        # is `WHERE id = uid`, so a reused session_id never receives a deleted session's state
        self.uid = session_uid
        self.log = ports.log
        self.inbox = Inbox()  # the client's reports (received messages above all) first
        self.state = SessionState()
        self.behaviour = Behaviour()  # the row's behaviour settings, read at every load
        self.client: SessionClient | None = None
        self.generation = 0
        self.commands = CommandRunner(self)
        self.done = threading.Event()
        self.stopping = threading.Event()  # set by stop(): a held write gives up after a grace
        self.holder = Holder(self.stopping, self.log, session_id)
        self._closed = False  # the actor ended: posts go to a fresh actor (`_forward`)
        self._post_lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"session-{session_id}", daemon=True)

    @property
    def status(self) -> str | None:
        return self.state.status

    # -- the inbox ----------------------------------------------------------------------
    def start(self) -> "SessionActor":
        self.thread.start()
        return self

    def post(self, *item: Any) -> None:
        with self._post_lock:
            if not self._closed:
                self.inbox.put(item)
                return
        self._forward(item)

    def post_command(self, command_id: str, on_done: Callable[[], None], type: str | None = None) -> None:
        """Queue a command unless it is already waiting here (SQS and the backlog scan may both
        bring it). `type` is the command's type when the message carried it."""
        with self._post_lock:
            if not self._closed:
                if self.commands.track(command_id):
                    self.inbox.put(("command", command_id, on_done, type))
                else:
                    self.inbox.put(("ack", on_done))
                return
        self._forward(("command", command_id, on_done, type))

    def _forward(self, item: tuple) -> None:
        """An item for an actor that has ended goes to the session's next actor on this runner
        (a stop or a timer is only for this one; an acknowledgement is made here)."""
        kind = item[0]
        if kind in ("stop", "timer") or (kind == "driver" and item[2] != "event"):
            return  # (a dropped client's state events are stale: the next actor has its own client)
        if kind == "ack":
            item[1]()
            return
        actors = self.ports.actors
        if actors is None:
            return  # (an actor built alone, in a test)
        actors.finished(self)  # actor_for() builds a fresh one
        successor = actors.actor_for(self.session_id)
        if kind == "command":
            successor.post_command(item[1], item[2], item[3] if len(item) > 3 else None)
        else:
            successor.post(*item)

    def stop(self, *, graceful: bool, wait: float = 15.0) -> None:
        self.stopping.set()
        self.post("stop", graceful)
        self.done.wait(wait)

    def _sink(self, generation: int) -> Callable[[str, dict[str, Any]], None]:
        return lambda kind, data: self.post("driver", generation, kind, data)

    def _next_timer(self) -> float | None:
        timers = [t for t in (self.state.retry_at, self.state.qr_deadline, self.commands.next_deadline(),
                              self.commands.pacer_deadline()) if t is not None]
        return min(timers) if timers else None

    def _run(self) -> None:
        try:
            while True:
                deadline = self._next_timer()
                timeout = None if deadline is None else max(0.0, deadline - self.ports.clock.monotonic())
                try:
                    item = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    item = ("timer",)
                if item[0] == "stop":
                    self._shutdown(graceful=item[1])
                    return
                if not self._handle_safely(item):
                    return
                if item[0] != "timer" and deadline is not None and self.ports.clock.monotonic() >= deadline:
                    # a busy inbox never times out: the timers (paced sends above all) must not starve
                    if not self._handle_safely(("timer",)):
                        return
        finally:
            self._close()
            self.done.set()
            if self.ports.actors is not None:
                self.ports.actors.finished(self)

    def _handle_safely(self, item: tuple) -> bool:
        """Handle one item; False when the actor must end (its session row is gone)."""
        try:
            self._handle(item)
        except SessionReplaced:
            self.log.info("session was replaced by a new one with the same id; handing over",
                          extra={"session_id": self.session_id})
            self._drop_client()
            self.commands.hand_over()
            return False
        except SessionGone:
            self.log.info("session row is gone; dropping its client", extra={"session_id": self.session_id})
            self._drop_client()
            self.commands.drain("session_not_found", "the session was deleted")
            return False
        except Exception as exc:  # noqa: BLE001 - one bad item never kills the actor
            self.log.exception("session actor error", extra={"session_id": self.session_id,
                                                             "error": str(exc)[:300]})
        return True

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "command":
            self.commands.run(item[1], item[2], item[3] if len(item) > 3 else None)
        elif kind == "ack":
            item[1]()
        elif kind == "driver":
            # a received message is a fact whichever client took it; state events of a
            # replaced client are stale
            if item[1] == self.generation or item[2] == "event":
                self._driver_event(item[2], item[3])
        elif kind == "reconcile":
            self._reconcile(item[1])
        elif kind == "timer":
            self._timers()

    # -- the session row ----------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        row = self.ports.store.load(self.session_id)
        if row is None:
            raise SessionGone(self.session_id)
        self._bind(row)
        self._set_behaviour(Behaviour.from_row(row))
        return row

    def _set_behaviour(self, new: Behaviour) -> None:
        """A settings change reaches the live client here, without a reconnect."""
        old, self.behaviour = self.behaviour, new
        if old != new:
            behaviour.apply(self, old, new)
            self.commands.pacer.reschedule()

    def _bind(self, row: dict[str, Any]) -> None:
        if self.uid is None:
            self.uid = str(row["id"])
        elif str(row["id"]) != self.uid:
            raise SessionReplaced(self.session_id)

    def write(self, change: StateChange) -> None:
        """One transaction of the session's state (`SessionStore.apply`); the event is sent
        after commit. SessionGone/SessionReplaced when the row is no longer this actor's."""
        if self.uid is None:
            self.load()  # binds the row id
        runner_id = self.ports.settings.runner_id
        change = replace(change, runtime={"runner_id": runner_id, **(change.runtime or {})},
                         metadata={"runner_id": runner_id})
        envelope = self.ports.store.apply(self.session_id, change, uid=self.uid)
        if envelope is None:
            self.load()  # raises SessionReplaced when another row has the id now
            raise SessionGone(self.session_id)
        if envelope:
            self.ports.events.send([envelope])
            self.ports.metrics.events.labels(event=change.event).inc()

    # -- stepping the machine -----------------------------------------------------------
    def step(self, event: machine.Input) -> None:
        if machine.needs_row(self.state, event):
            event = replace(event, row=self.load())  # type: ignore[arg-type]
        self.state, effects = machine.step(self.state, event, self.ports.settings.tuning)
        for effect in effects:
            self._perform(effect)

    def _perform(self, effect: machine.Effect) -> None:
        if isinstance(effect, machine.Write):
            self.write(effect.change)
        elif isinstance(effect, machine.DropClient):
            self._drop_client()
        elif isinstance(effect, machine.OpenClient):
            self.generation += 1
            self.client = self.ports.driver.client(SessionConfig(self.session_id, effect.jid, effect.dial,
                                                                         session_uid=self.uid),
                                                   self._sink(self.generation))
        elif isinstance(effect, machine.Dial):
            self._dial()
        elif isinstance(effect, machine.Connect):
            self.connect(effect.reason)
        elif isinstance(effect, machine.FailDeferred):
            self.commands.fail_deferred(effect.code, effect.message)
        elif isinstance(effect, machine.FlushDeferred):
            self.commands.flush_deferred()
        elif isinstance(effect, machine.ForgetDevice):
            self.ports.driver.forget_device(self.session_id, effect.jid)
        elif isinstance(effect, machine.Count):
            self._count(effect)

    def _count(self, effect: machine.Count) -> None:
        if effect.metric == "errors":
            self.ports.metrics.errors.labels(code=effect.code).inc()
        else:
            self.ports.metrics.reconnects.inc()

    def connect(self, reason: str) -> None:
        row = self.load()
        present = not row["jid"] or self.ports.driver.has_device(self.session_id, row["jid"])
        plan = self.ports.proxies.plan(self.session_id, row) if machine.dials(reason, row, present) \
            else machine.ProxyPlan()
        clock = self.ports.clock
        self.step(machine.StartConnect(reason, row, present, plan, now=clock.monotonic(), jitter=clock.jitter()))

    def _dial(self) -> None:
        assert self.client is not None
        try:
            self.client.connect()
        except DriverError as exc:
            self.step(self._failed(exc.code, exc.message))

    def _failed(self, code: str, message: str) -> machine.Failed:
        return machine.Failed(code, message, True, self.ports.clock.monotonic(), self.ports.clock.jitter())

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        self.generation += 1  # late callbacks of the old client are ignored
        if client is not None:
            try:
                client.disconnect()
            except Exception as exc:  # noqa: BLE001
                self.log.warning("client disconnect failed", extra={"session_id": self.session_id,
                                                                    "error": str(exc)[:200]})
            release = getattr(self.ports.driver, "release", None)
            if release:
                release(self.session_id, client)

    def _timers(self) -> None:
        self.commands.pace()
        now = self.ports.clock.monotonic()
        deadline = self.commands.next_deadline()
        self.step(machine.Tick(now, deferred_due=deadline is not None and now >= deadline,
                               waited=self.ports.settings.send_waits_for_login))

    def _driver_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "event":
            self._received_durably(data)
            return
        clock = self.ports.clock
        self.step(machine.DriverEvent(kind, data, clock.monotonic(), clock.wall(), clock.jitter()))
        if kind == "connected" and self.state.logged_in:
            behaviour.on_login(self)

    def hold(self, write: Callable[[], Any], what: str, **context: Any) -> Any:
        """`write()`, held and tried again while the database is down (runner_container/holding.py)."""
        return self.holder.run(write, what, **context)

    def write_held(self, change: StateChange) -> None:
        """`write` of what already happened outside the database (a message handed to WhatsApp)."""
        self.hold(lambda: self.write(change), f"{change.event or 'state'} write")

    def _received_durably(self, data: dict[str, Any]) -> None:
        """Write a received message (or receipt) event, holding it while the database is down:
        WhatsApp does not send a message again once the client took it, so until it is written
        it exists only here (bench/faults.py scenario 3 lost them on a failed write)."""
        self.hold(lambda: self.commands.received(data["event"], data["data"]), "received event", any_dependency=True,
                  event=data.get("event"), message_id=(data.get("data") or {}).get("message_id"))

    def _close(self) -> None:
        """The actor ends: close the inbox (later posts go to a fresh actor), then settle what
        waits in it. Messages the client took after the stop was posted are written here (the
        next owner would never see them); commands and reconciliations posted after the stop
        came from the supervisor taking the slot back meanwhile: they go to the next actor,
        else they would sit in a dead inbox while their SQS message stays invisible."""
        with self._post_lock:
            self._closed = True
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if item[0] != "driver" or item[2] != "event":
                self._forward(item)
                continue
            try:
                self._received_durably(item[3])
            except Exception as exc:  # noqa: BLE001 - logged with the message id: nothing else to do
                self.log.error("received event not written before the session stopped here",
                               extra={"session_id": self.session_id, "event": item[3].get("event"),
                                      "message_id": (item[3].get("data") or {}).get("message_id"),
                                      "error": str(exc)[:200]})

    def _reconcile(self, row: dict[str, Any] | None) -> None:
        if row is not None:
            self._bind(row)
        row = row or self.load()
        url, unreadable = None, False
        if row["desired_state"] == "connected" and self.state.active:
            try:
                url = self.ports.proxies.url_for(self.session_id, row)
            except Exception:  # noqa: BLE001 - an unreadable password is reported when connecting
                unreadable = True
        self.step(machine.Reconcile(row, url, unreadable))

    def _shutdown(self, *, graceful: bool) -> None:
        try:
            self.step(machine.Requested("stop", graceful=graceful))
        except SessionGone:
            pass
        except Exception as exc:  # noqa: BLE001 - the next owner reconciles anyway
            self.log.warning("could not record handover", extra={"session_id": self.session_id,
                                                                 "error": str(exc)[:200]})
        try:
            self.commands.release_paced()
        except Exception as exc:  # noqa: BLE001 - left `running` under this runner: taken over once it is gone
            self.log.warning("could not give back the waiting sends", extra={"session_id": self.session_id,
                                                                            "error": str(exc)[:200]})
        # commands still in the inbox stay `queued`/unacknowledged: the next owner runs them
