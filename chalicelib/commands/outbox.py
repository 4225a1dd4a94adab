"""The command outbox (API -> runner), and the waiter for a command's result.

A command is first a row in `commands` (status `queued`), written in the caller's
transaction when it has one, then a message on the SQS FIFO queue of the runner holding the
session's slot (routing follows placement: the INSERT returns that queue's URL; with no
holder for the moment, no message: the runner that takes the slot runs its backlog from
the table) (`MessageGroupId` = session id, so a session's commands run in order;
`MessageDeduplicationId` = command id, so a resend within five minutes is dropped by
SQS and a later one by the runner's claim on the row). If SQS does not take the message,
the row stays `queued` with no `enqueued_at`, and `sweep()` (run by every runner) sends
it again: nothing the API accepted is lost.

Routes that must answer with a result (pair-phone, send with `wait`) `await_result()` the
row: LISTEN on `zemeow_command_done` (a trigger NOTIFYs when a command finishes), with a
re-read of the row as the source of truth, bounded by a timeout.

A waiting `submit` hands the message to SQS only when the runner has not taken the command
within `DOORBELL_GRACE_SECONDS`: the insert's NOTIFY (the runner's doorbell, migration 0081)
brings it there in a few milliseconds, and a command that a runner claimed or finished needs
no message, because the table is what every recovery reads (the new holder of a slot runs
its backlog, including what a dead runner left `running`; `sweep()` resends what stays
queued). The message would only cost three SQS requests (send, receive, delete) that carry
nothing. One that did not finish in time is answered only once its send is over, so
nothing accepted depends on a send still in flight. A request without `wait` sends at once:
nobody watches its row.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import psycopg

from chalicelib.commands.catalog import COMMAND_TYPES
from chalicelib.commands.outcome import Outcome
from chalicelib.db import Database
from chalicelib.errors import NotFound, RunnerFailed, SessionNotFound, UpstreamTimeout
from chalicelib.repositories.commands import TERMINAL, CommandRepository

NOTIFY_CHANNEL = "zemeow_command_done"
# How long a route waits for the runner (`?wait=true`, groups, contact checks): under API
# Gateway's 29 s integration timeout, so a slow runner gets our 504 `runner_timeout`
# naming the command, not the gateway's bare one.
ROUTE_WAIT_SECONDS = 25.0
# How long a waiting submit lets the doorbell work before it sends the SQS message as well:
# far above the doorbell's claim time (a few ms; tens under load), far below the backlog scan's.
DOORBELL_GRACE_SECONDS = 0.25
SENDS_BESIDE = 32  # SQS sends a process keeps in flight beside the waits; past it a request sends itself


def command_view(row: dict[str, Any]) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "command_id": str(row["id"]),
        "session_id": row["session_id"],
        "type": row["type"],
        "status": row["status"],
        "result": row.get("result"),
        "error": row.get("error"),
        "attempts": row.get("attempts", 0),
        "idempotency_key": row.get("idempotency_key"),
        "created_at": iso(row.get("created_at")),
        "started_at": iso(row.get("started_at")),
        "finished_at": iso(row.get("finished_at")),
    }


class CommandOutbox:
    """Records commands, hands them to SQS, resends what SQS did not take, and waits for
    their results. It dispatches nothing: the runner runs them (`runner_container/commands.py`)."""

    def __init__(self, db: Database, sqs: Any, queue_url_for_session: Callable[[str], "str | None"],
                 repo: CommandRepository | None = None, logger: Any = None):
        self.db = db
        self.sqs = sqs
        self.queue_url_for_session = queue_url_for_session
        self.repo = repo or CommandRepository(db)
        self.log = logger
        self.listener = CompletionListener(db, logger)
        self._senders: ThreadPoolExecutor | None = None
        self._senders_lock = threading.Lock()
        self._sending = 0  # sends handed to the pool and not over

    # -- enqueue ----------------------------------------------------------------------
    def record(self, conn: psycopg.Connection, session_id: str, type: str, payload: dict[str, Any] | None = None,
               *, idempotency_key: str | None = None) -> tuple[dict[str, Any], bool]:
        """Insert the row inside the caller's transaction; call `send()` after commit."""
        if type not in COMMAND_TYPES:
            raise ValueError(f"unknown command type {type!r}")
        row, created = self.repo.insert(conn, session_id=session_id, type=type, payload=payload or {},
                                        idempotency_key=idempotency_key)
        if row is None:
            raise SessionNotFound(session_id)
        return row, created

    def enqueue(self, session_id: str, type: str, payload: dict[str, Any] | None = None, *,
                idempotency_key: str | None = None) -> dict[str, Any]:
        """Record and send one command. Returns the row.

        No explicit transaction: the insert is one statement (autocommit), and with an
        idempotency key the read of the first command only follows a conflict, which
        PostgreSQL resolves against a committed row. That saves BEGIN and COMMIT, two of
        the seven round trips a message POST makes."""
        with self.db.connection() as conn:
            row, created = self.record(conn, session_id, type, payload, idempotency_key=idempotency_key)
        if created:
            self.send([row])
        return row

    def send(self, rows: list[dict[str, Any]]) -> int:
        """Hand rows to the queues of the runners holding their sessions; never raises (the
        sweeper resends what failed). A row with no holder now is not sent: the runner that
        takes its slot runs it from the table."""
        sent: list[str] = []
        for row in rows:
            command_id, session_id = str(row["id"]), row["session_id"]
            try:
                url = row["queue_url"] if "queue_url" in row else self.queue_url_for_session(session_id)
                if not url:
                    continue
                self.sqs.send_message(
                    QueueUrl=url,
                    MessageBody=json.dumps({"command_id": command_id, "session_id": session_id,
                                            "type": row["type"]}, separators=(",", ":")),
                    MessageGroupId=session_id,
                    MessageDeduplicationId=command_id,
                )
            except Exception as exc:  # noqa: BLE001 - the row stays queued; sweep() resends it
                if self.log:
                    self.log.warning("command not handed to SQS; the sweeper will resend it",
                                     extra={"command_id": command_id, "reason": str(exc)[:200]})
                continue
            sent.append(command_id)
        try:
            self.repo.mark_enqueued(sent)
        except Exception:  # noqa: BLE001 - worst case a resend, which the runner's claim dedupes
            pass
        return len(sent)

    def sweep(self, older_than_seconds: float = 10.0, limit: int = 500) -> int:
        """Resend commands still `queued` after `older_than_seconds` (SQS was down, or lost)."""
        rows = self.repo.unsent(older_than_seconds, limit)
        return self.send(rows) if rows else 0

    # -- read / await -----------------------------------------------------------------
    def get(self, session_id: str, command_id: str) -> dict[str, Any]:
        try:
            row = self.repo.get(session_id, command_id)
        except psycopg.errors.InvalidTextRepresentation:
            row = None
        if row is None:
            raise NotFound(f"command '{command_id}' does not exist for session '{session_id}'",
                           code="command_not_found")
        return row

    def await_result(self, command_id: str, timeout: float, *, fresh: bool = False) -> dict[str, Any] | None:
        """The command's row once finished, or its current row when `timeout` passes.
        `fresh`: the caller has just recorded it (no read before listening)."""
        deadline = time.monotonic() + max(0.0, timeout)
        if not fresh or timeout <= 0:
            row = self.repo.get_by_id(command_id)
            if row is None or row["status"] in TERMINAL or timeout <= 0:
                return row
        with self.listener.watch(command_id) as done:
            while True:
                row = self.repo.get_by_id(command_id)  # after registering: no finish slips between
                if row is None or row["status"] in TERMINAL:
                    return row
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return row
                # woken by the NOTIFY; without a live listener, re-read at a short interval
                done.wait(min(remaining, 1.0 if self.listener.alive else 0.05))
                done.clear()

    def await_success(self, command_id: str, timeout: float, *, what: str = "the command",
                      failure_code: str = "runner_failed", fresh: bool = False) -> dict[str, Any]:
        """The finished command's view when it succeeded. A failure is `RunnerFailed` (502)
        with the runner's error code, a command still queued/running after `timeout` is
        `UpstreamTimeout` (504, code `runner_timeout`); both name the command id."""
        return self._success_view(self.await_result(command_id, timeout, fresh=fresh), command_id, timeout,
                                  what=what, failure_code=failure_code)

    @staticmethod
    def _success_view(row: dict[str, Any] | None, command_id: str, timeout: float, *, what: str,
                      failure_code: str) -> dict[str, Any]:
        if row is None:  # the session (and its commands) was deleted meanwhile
            raise NotFound(f"command '{command_id}' is gone (was its session deleted?)", code="command_not_found")
        view = command_view(row)
        if view["status"] == "succeeded":
            return view
        if view["status"] == "failed":
            error = view.get("error") or {}
            raise RunnerFailed(error.get("message") or f"{what} failed on the runner",
                               code=error.get("code") or failure_code, details={"command_id": view["command_id"]})
        raise UpstreamTimeout(f"the runner did not finish {what} within {timeout:g}s; the command stays "
                              f"{view['status']}: GET .../commands/{view['command_id']}",
                              code="runner_timeout", details={"command_id": view["command_id"]})

    def submit(self, session_id: str, type: str, payload: dict[str, Any], *, wait: bool, timeout: float,
               idempotency_key: str | None = None, what: str = "the command",
               failure_code: str = "runner_failed") -> Outcome:
        """Enqueue a command; without `wait` it is accepted ({command_id, status}), with it
        done (the finished view) or the errors of `await_success`."""
        if not wait:
            row = self.enqueue(session_id, type, payload, idempotency_key=idempotency_key)
            view = command_view(row)
            return Outcome.accepted({"command_id": view["command_id"], "status": view["status"]})
        with self.db.connection() as conn:
            row, created = self.record(conn, session_id, type, payload, idempotency_key=idempotency_key)
        command_id, started = str(row["id"]), time.monotonic()
        sending = None
        if created:
            early = self.await_result(command_id, min(timeout, DOORBELL_GRACE_SECONDS), fresh=True)
            if early is None or early["status"] in TERMINAL:
                return Outcome.finished(self._success_view(early, command_id, timeout, what=what,
                                                           failure_code=failure_code))
            if early["status"] == "queued":  # no runner took it by the doorbell: SQS carries it too
                sending = self._send_beside(row)
        try:
            return Outcome.finished(self.await_success(command_id, timeout - (time.monotonic() - started),
                                                       what=what, failure_code=failure_code))
        except UpstreamTimeout:
            if sending is not None:  # still queued: its message should be with SQS before we answer
                try:
                    sending.result(timeout=5)
                except Exception:  # noqa: BLE001 - a send that hangs: the sweeper resends the row
                    pass
            raise

    def _send_beside(self, row: dict[str, Any]) -> Future | None:
        """Send on the pool; when SENDS_BESIDE sends are already waiting there (SQS slower than
        the requests), send here and now instead, so the backlog never grows without bound."""
        with self._senders_lock:
            pool = None
            if self._sending < SENDS_BESIDE:
                self._sending += 1
                if self._senders is None:
                    self._senders = ThreadPoolExecutor(max_workers=8, thread_name_prefix="command-send")
                pool = self._senders
        if pool is None:
            self.send([row])
            return None
        future = pool.submit(self.send, [row])
        future.add_done_callback(self._sent)
        return future

    def _sent(self, _future: Future) -> None:
        with self._senders_lock:
            self._sending -= 1

    def close(self) -> None:
        """Let the sends in flight finish (a process that stops; Lambda never calls it)."""
        with self._senders_lock:
            senders, self._senders = self._senders, None
        if senders is not None:
            senders.shutdown(wait=True)


class CompletionListener:
    """One LISTEN connection per process, shared by every await: a finished command's
    NOTIFY wakes exactly its waiters. Started on first use; if the connection breaks,
    waiters fall back to short re-reads while it reconnects."""

    def __init__(self, db: Database, logger: Any = None):
        self.db = db
        self.log = logger
        self._waiters: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.alive = False
        self._ready = threading.Event()

    @contextmanager
    def watch(self, command_id: str) -> Iterator[threading.Event]:
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(command_id, []).append(event)
            if self._thread is None or not self._thread.is_alive():
                self._ready.clear()
                self._thread = threading.Thread(target=self._run, name="command-listener", daemon=True)
                self._thread.start()
        self._ready.wait(2.0)  # LISTEN is active (or failed) before the caller re-reads the row
        try:
            yield event
        finally:
            with self._lock:
                waiters = self._waiters.get(command_id, [])
                if event in waiters:
                    waiters.remove(event)
                if not waiters:
                    self._waiters.pop(command_id, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._waiters:
                    self._thread = None
                    return
            try:
                conn = self.db.connect_direct()
            except psycopg.Error:
                self.alive = False
                self._ready.set()
                time.sleep(1.0)
                continue
            try:
                CommandRepository.listen(conn, NOTIFY_CHANNEL)
                self.alive = True
                self._ready.set()
                idle_since = time.monotonic()
                while True:
                    for notify in conn.notifies(timeout=1.0):
                        with self._lock:
                            for event in self._waiters.get(notify.payload, []):
                                event.set()
                    with self._lock:
                        if self._waiters:
                            idle_since = time.monotonic()
                        elif time.monotonic() - idle_since > 30:
                            self._thread = None
                            return  # nobody waited for 30 s: free the connection
            except psycopg.Error as exc:
                if self.log:
                    self.log.warning("command listener lost its connection", extra={"reason": str(exc)[:200]})
            finally:
                self.alive = False
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
