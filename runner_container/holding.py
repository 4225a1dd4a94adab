"""Writes an actor may not drop when the database is down: it holds them and tries again.

Some writes record what already happened outside the database and cannot be done again:
- a received message: whatsmeow acknowledges a message to WhatsApp as it arrives, before
  any handler runs (`SynchronousAck` is off in the whatsmeow neonize builds), so WhatsApp
  never sends it again and until it is written it exists only in this process;
- a message already handed to WhatsApp: its `message.sent` event and the command's result;
- a claim whose answer was lost with the connection: the UPDATE may have committed, and
  the row then says `running` on this live runner, which nothing else will take over.

Dropping one of them on a failed write lost received messages and left a command `running`
for ever after PostgreSQL stopped for a few seconds (bench/faults.py scenario 3: the send
had gone out, the `message.sent` write and then the `failed` mark both failed, and the
backlog's later copy was only acknowledged, as a command this actor had finished). So the
actor waits and tries again, and the session's next items wait behind it, in order. For a
command only the database's unavailability is held (code `database_unavailable`): another
dependency down (media storage) fails the command visibly, as before. An actor told to stop (its session moved to another
runner) keeps trying for STOP_GRACE seconds more, then gives up, logging what it gives up.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, TypeVar

from chalicelib.errors import DependencyUnavailable

T = TypeVar("T")

DATABASE_DOWN = "database_unavailable"
FIRST_WAIT = 0.25  # seconds before the first retry; doubled up to MAX_WAIT
MAX_WAIT = 1.0  # a retry is cheap: with the database down the pool itself waits DB_CONNECT_TIMEOUT
STOP_GRACE = 10.0  # the supervisor waits 15 s for a stopping actor


def database_down(exc: BaseException) -> bool:
    return isinstance(exc, DependencyUnavailable) and getattr(exc, "code", None) == DATABASE_DOWN


class Holder:
    def __init__(self, stopping: threading.Event, log: Any, session_id: str, *, first_wait: float = FIRST_WAIT,
                 max_wait: float = MAX_WAIT, stop_grace: float = STOP_GRACE,
                 monotonic: Callable[[], float] = time.monotonic):
        self.stopping = stopping
        self.log = log
        self.session_id = session_id
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.stop_grace = stop_grace
        self.monotonic = monotonic

    def run(self, write: Callable[[], T], what: str, *, any_dependency: bool = False, **context: Any) -> T:
        """`write()`, tried again while the database is down (with `any_dependency`, while any
        DependencyUnavailable is raised); raises the last error once a stopping actor's grace
        is over, and any other error at once."""
        wait = self.first_wait
        give_up_at: float | None = None
        held = False
        while True:
            try:
                result = write()
            except DependencyUnavailable as exc:
                if not (any_dependency or database_down(exc)):
                    raise
                now = self.monotonic()
                if self.stopping.is_set():
                    give_up_at = now + self.stop_grace if give_up_at is None else give_up_at
                    if now >= give_up_at:
                        self.log.error(f"database still down while the session stops here: {what} given up",
                                       extra={"session_id": self.session_id, **context, "reason": exc.message})
                        raise
                if not held:
                    self.log.warning(f"database unavailable; holding the {what} until it is written",
                                     extra={"session_id": self.session_id, **context, "reason": exc.message})
                    held = True
                if self.stopping.is_set():
                    time.sleep(wait)  # (the event is set: waiting on it would not wait)
                else:
                    self.stopping.wait(wait)
                wait = min(wait * 2, self.max_wait)
                continue
            if held:
                self.log.info(f"database back; the held {what} is written",
                              extra={"session_id": self.session_id, **context})
            return result
