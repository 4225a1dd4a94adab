"""Commands on the session actor's thread: claim, run by the command table, finish.

`chalicelib/commands/catalog.py` says, per type, whether a command waits for the login
and which handler below runs it (or which client method, for a plain `ClientCall`).
A command that arrives while the session is (re)connecting and waits for the login is
deferred, in order, until the login or `send_waits_for_login`. Received messages are
written here too (`received`): the message store rows and the event, or handed to the
inbound media pool when they carry a file.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from chalicelib.commands.catalog import COMMANDS, CommandSpec
from chalicelib.repositories.session_store import SessionGone, StateChange
from runner_container import behaviour, handlers
from runner_container.history import bounded, synced_event
from runner_container.machine import message_change
from runner_container.pacing import Pacer
from runner_container.drivers.base import DriverError

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.session import SessionActor

Deferred = tuple[str, Callable[[], None], float]
RECENT = 256  # finished here lately: a second copy (doorbell and SQS both bring each command) is only acknowledged


class CommandRunner:
    def __init__(self, actor: "SessionActor"):
        self.actor = actor
        self.ports = actor.ports
        self.pending_ids: set[str] = set()  # posted and not finished (no duplicates in the inbox)
        self.deferred: list[Deferred] = []  # waiting for the login, in order
        self.recent: dict[str, None] = {}  # ids finished by this actor, oldest first (bounded by RECENT)
        self.pacer = Pacer(actor)  # claimed sends waiting for their slot (send_rate, typing), in order
        self._lock = threading.Lock()

    # -- bookkeeping (any thread) ---------------------------------------------------------
    def track(self, command_id: str) -> bool:
        """Mark the command as waiting here; False when it already is."""
        with self._lock:
            if command_id in self.pending_ids:
                return False
            self.pending_ids.add(command_id)
            return True

    def _forget(self, command_id: str) -> None:
        with self._lock:
            self.pending_ids.discard(command_id)

    def next_deadline(self) -> float | None:
        return self.deferred[0][2] if self.deferred else None

    def pacer_deadline(self) -> float | None:
        return self.pacer.next_deadline()

    # -- running --------------------------------------------------------------------------
    def run(self, command_id: str, on_done: Callable[[], None], type: str | None = None,
            from_deferred: bool = False) -> None:
        if command_id in self.recent:  # the other copy of a command already run here
            self._forget(command_id)
            on_done()
            return
        if not from_deferred and (self.deferred or self._must_wait_for_login(command_id, type)):
            deadline = self.ports.clock.monotonic() + self.ports.settings.send_waits_for_login
            self.deferred.append((command_id, on_done, deadline))
            return
        acknowledged = parked = False
        try:
            # held while the database is down: a claim whose answer was lost may have committed
            # (the row says `running` here, and only this actor will take it up again)
            row = self.actor.hold(lambda: self._load_and_claim(command_id), "command claim", command_id=command_id)
            if row is None:
                self._not_ours(command_id)
                return  # finished already (a resend), running on a live runner, or not this row's
            # claimed: the row carries the command from here (runner_container/acker.py), so
            # release the queue message now and let SQS hand over the session's next one
            on_done()
            acknowledged = True
            if self.pacer.admits(row):  # waits for its slot (runner_container/pacing.py); stays tracked
                self.pacer.park(row)
                parked = True
            else:
                self._execute_row(row)
        finally:
            if not parked:
                self._forget(command_id)
            if not acknowledged:
                on_done()
        if parked:
            self.pace()

    def pace(self) -> None:
        """Run the paced commands whose time came."""
        for row in self.pacer.ready():
            try:
                self._execute_row(row)
            finally:
                self._forget(str(row["id"]))

    def _load_and_claim(self, command_id: str) -> dict[str, Any] | None:
        if self.actor.uid is None:
            self.actor.load()
        return self._claim_in_order(command_id)

    def _claim_in_order(self, command_id: str) -> dict[str, Any] | None:
        """Claim the command once no older command of the session is queued: those that
        have not reached this actor yet (their doorbell was missed, their SQS message is
        behind) run first, oldest first."""
        row = self.ports.commands.claim(command_id, self.actor.uid, in_order=True)
        if row is not None:
            return row
        older = [o for o in self.ports.commands.older_queued(command_id) if o["id"] not in self.recent]
        if not older:
            return None
        for other in older:  # (a copy still in the inbox finds it in `recent` and is only acknowledged)
            self.track(other["id"])
            self.run(other["id"], lambda: None, other["type"], from_deferred=True)
        return self.ports.commands.claim(command_id, self.actor.uid, in_order=True)

    def _execute_row(self, row: dict[str, Any]) -> None:
        """Run a claimed command and record its outcome. The row is this runner's until it is
        finished, so both are held while the database is down: a handler stopped by the
        database before it acted runs again once it answers (the writes after a handler's
        action are held themselves: `SessionActor.write_held`), and the outcome is written
        however long that takes; a dropped finish left the row `running` for ever."""
        started = time.monotonic()
        command_id = str(row["id"])

        def finish(row: dict[str, Any], **outcome: Any) -> None:
            self.actor.hold(lambda: self.ports.commands.finish(row, **outcome), "command outcome",
                            command_id=command_id)

        try:
            result = self.actor.hold(lambda: self.dispatch(row["type"], row["payload"] or {}), "command",
                                     command_id=command_id)
        except SessionGone:
            finish(row, ok=False, error={"code": "session_not_found", "message": "the session was deleted"})
            raise
        except DriverError as exc:
            finish(row, ok=False, error={"code": exc.code, "message": exc.message})
        except Exception as exc:
            self.actor.log.exception("command failed", extra={"command_id": str(row["id"])})
            finish(row, ok=False, error={"code": "internal_error", "message": str(exc)[:300]})
        else:
            finish(row, ok=True, result=result)
        finally:
            self.recent[str(row["id"])] = None
            if len(self.recent) > RECENT:
                del self.recent[next(iter(self.recent))]
        self.actor.log.debug("command done", extra={"command_id": str(row["id"]), "type": row["type"],
                                                    "ms": round((time.monotonic() - started) * 1000, 1)})

    def dispatch(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        spec: CommandSpec | None = COMMANDS.get(type)
        if spec is None:
            raise DriverError("unknown_command", f"unknown command type {type!r}")
        handler: Callable[[Any, CommandSpec, dict[str, Any]], dict[str, Any]] = getattr(handlers, spec.handler)
        return handler(self.actor, spec, payload)

    def _not_ours(self, command_id: str) -> None:
        """A queued command the claim refused because another session row owns it: either this
        actor is stale (SessionReplaced, raised by `load`: the command is handed over) or
        the command's owner was deleted (it fails, naming why)."""
        row = self.ports.commands.get(command_id)
        if row is None or row["status"] != "queued" or str(row["session_uid"]) == self.actor.uid:
            return
        self.actor.load()
        claimed = self.ports.commands.claim(command_id)
        if claimed is not None:
            self.ports.commands.finish(claimed, ok=False, error={"code": "session_not_found",
                                                                 "message": "the command's session was deleted"})

    def _must_wait_for_login(self, command_id: str, type: str | None) -> bool:
        """A send that arrives while the session is (re)connecting waits for the login."""
        state = self.actor.state
        if state.logged_in or not (state.active or state.retry_at is not None):
            return False
        if type is not None:  # the queue message named it: no read of the row
            spec = COMMANDS.get(type)
            return spec is not None and spec.waits_for_login
        row = self.ports.commands.get(command_id)
        spec = COMMANDS.get(row["type"]) if row is not None else None
        return spec is not None and spec.waits_for_login and row is not None and row["status"] == "queued"

    # -- the deferred queue and the end of the actor ---------------------------------------
    def fail(self, command_id: str, on_done: Callable[[], None], code: str, message: str) -> None:
        try:
            row = self.ports.commands.claim(command_id)
            if row is not None:
                self.ports.commands.finish(row, ok=False, error={"code": code, "message": message})
        finally:
            self._forget(command_id)
            on_done()

    def fail_deferred(self, code: str, message: str) -> None:
        deferred, self.deferred = self.deferred, []
        for command_id, on_done, _ in deferred:
            self.fail(command_id, on_done, code, message)

    def flush_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        for index, (command_id, on_done, _deadline) in enumerate(deferred):
            if not self.actor.state.logged_in:  # lost the login again while flushing: wait again, in order
                self.deferred = deferred[index:] + self.deferred
                return
            self.run(command_id, on_done, from_deferred=True)

    def _take_inbox(self) -> list[tuple[str, Callable[[], None]]]:
        """The commands still in the inbox (acks are released)."""
        waiting: list[tuple[str, Callable[[], None]]] = []
        while True:
            try:
                item = self.actor.inbox.get_nowait()
            except queue.Empty:
                return waiting
            if item[0] == "command":
                waiting.append((item[1], item[2]))
            elif item[0] == "ack":
                item[1]()

    def drain(self, code: str, message: str) -> None:
        for command_id, on_done in self._take_inbox():
            self.fail(command_id, on_done, code, message)
        self.fail_deferred(code, message)
        self._drop_paced(code, message)

    def _drop_paced(self, code: str, message: str) -> None:
        """The claimed sends still waiting, failed (their session is gone or replaced: a deleted
        session's commands are deleted with it, so this finds nothing to write then)."""
        for row in self.pacer.take_all():
            try:
                self.ports.commands.finish(row, ok=False, error={"code": code, "message": message})
            finally:
                self._forget(str(row["id"]))

    def release_paced(self) -> None:
        """The actor stops (slot lost, runner stopping) while claimed sends wait: they go back to
        `queued`, so the session's next owner runs them, in order (a dead runner's are taken over
        from the backlog instead: runner_container/pacing.py)."""
        rows = self.pacer.take_all()
        for row in rows:
            self._forget(str(row["id"]))
        if rows:  # held: left `running` here, they would wait for this live runner for ever
            self.actor.hold(lambda: self.ports.commands.release(rows), "release of the waiting sends")

    def hand_over(self) -> None:
        """Give the commands waiting here to the actor of the session that now has this
        session_id (they are its commands: a deleted session's commands are deleted with it)."""
        actors = self.ports.actors
        assert actors is not None
        actors.finished(self.actor)  # actor_for() now builds a fresh actor
        successor = actors.actor_for(self.actor.session_id)
        deferred, self.deferred = self.deferred, []
        waiting = [(command_id, on_done) for command_id, on_done, _ in deferred] + self._take_inbox()
        for command_id, on_done in waiting:
            self._forget(command_id)
            successor.post_command(command_id, on_done)
        self._drop_paced("session_not_found", "the command's session was deleted")
        successor.post("reconcile", None)

    # -- received and sent messages ---------------------------------------------------------
    def received(self, name: str, payload: dict[str, Any]) -> None:
        if name == "history.synced":
            self._history(payload)
            return
        if behaviour.ignored(self.actor.behaviour, name, payload):
            return  # ignore_groups / ignore_status_broadcast: neither stored nor emitted
        self._record(name, payload)
        behaviour.after_received(self.actor, name, payload)

    def _record(self, name: str, payload: dict[str, Any]) -> None:
        if "download" in payload:  # received media: stored off this thread (runner_container/inbound_media.py)
            if self.actor.uid is None:
                self.actor.load()
            payload = self.ports.media.handle(self.actor.session_id, name, payload, self.actor.uid)
            if payload is None:
                return  # a media worker writes the event once the file is stored
        self.actor.write(message_change(name, payload))

    def _history(self, payload: dict[str, Any]) -> None:
        """A history sync chunk: its chats, messages and names stored with a `history.synced`
        event counting them, in one write; nothing with HISTORY_SYNC=off."""
        history = bounded(payload.get("history") or {}, self.ports.settings.history_sync)
        if history is not None:
            self.actor.write(StateChange(event="history.synced", data=synced_event(history),
                                         store=(("history", history),)))

