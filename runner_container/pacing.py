"""Send pacing (issue 17): a session's `send_rate` (messages per minute) and its typing
simulation (`presence: composing` before each text, for a time proportional to its length).

Where the wait happens: in the session's actor, as one of its timers (like the reconnect
backoff and the QR deadline), never by sleeping. While sends wait, the actor goes on with
the session's other work (received messages, receipts, a disconnect, a settings change),
and every other session has its own actor. A send over the rate is parked here, in the
order it came, and leaves when its slot comes: none is dropped. Chat commands that arrive
behind waiting sends (a read, a presence) wait behind them, to keep the session's order;
state commands (connect, disconnect, logout, apply_settings) never wait here.

Why nothing is lost when the runner dies while sends wait: a send is claimed first
(`queued` -> `running`, under this runner's id) and its SQS message deleted then, as for
every command, so from then on the `commands` row carries it. A dead runner's heartbeat
stops (a stopped one is marked so); the runner that takes the slot over runs its backlog
(`SlotRepository.backlog`: running rows whose runner is gone, oldest first) and claims
them again (`CommandRepository.claim` takes a running row whose runner is gone): they are
paced again, in order, by the new owner. As for any command cut by a crash, a send that
reached WhatsApp just before the crash, with its row not yet finished, goes out again.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from chalicelib.commands.catalog import COMMANDS
from runner_container.drivers.base import DriverError

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.session import SessionActor

TYPING_SECONDS_PER_CHAR = 0.05  # 20 characters a second
TYPING_MIN_SECONDS = 0.5
TYPING_MAX_SECONDS = 5.0
LOGIN_POLL_SECONDS = 0.5  # a waiting send checks this often whether a lost login came back


def typing_seconds(text: str) -> float:
    """How long `composing` shows before a text: proportional to its length, capped."""
    return min(TYPING_MAX_SECONDS, max(TYPING_MIN_SECONDS, len(text) * TYPING_SECONDS_PER_CHAR))


def interval(send_rate: int | None) -> float:
    """Seconds between two sends at `send_rate` messages a minute (0: unlimited)."""
    return 60.0 / send_rate if send_rate else 0.0


@dataclass
class Waiting:
    row: dict[str, Any]  # the claimed command row
    wake: float  # when to look at it again
    typing_until: float | None = None  # `composing` was sent; the text goes at this time at the earliest
    login_deadline: float | None = None  # the session lost its login: how long the send waits for it


class Pacer:
    def __init__(self, actor: "SessionActor"):
        self.actor = actor
        self.queue: deque[Waiting] = deque()
        self.last_send: float | None = None  # monotonic time the session's last send was handed to the driver

    def admits(self, row: dict[str, Any]) -> bool:
        """Whether a claimed command must wait here rather than run now."""
        spec = COMMANDS.get(row["type"])
        if spec is None or not spec.waits_for_login:
            return False
        if self.queue:
            return True  # behind waiting sends, in order
        behaviour = self.actor.behaviour
        return row["type"] == "send_message" and bool(behaviour.send_rate or behaviour.typing_simulation)

    def park(self, row: dict[str, Any]) -> None:
        self.queue.append(Waiting(row, wake=self.actor.ports.clock.monotonic()))

    def sent(self, at: float) -> None:
        """A message went out; `at`: when it was handed to the driver (the next slot counts from there)."""
        self.last_send = at

    def reschedule(self) -> None:
        """The settings changed: look at the head again now (a new rate moves its slot)."""
        if self.queue:
            self.queue[0].wake = self.actor.ports.clock.monotonic()

    def next_deadline(self) -> float | None:
        return self.queue[0].wake if self.queue else None

    def take_all(self) -> list[dict[str, Any]]:
        rows = [waiting.row for waiting in self.queue]
        self.queue.clear()
        return rows

    def ready(self) -> Iterator[dict[str, Any]]:
        """The rows whose time came, in order, each taken off the queue as it is yielded
        (the caller runs it before the next is looked at: a send moves the next slot)."""
        while self.queue:
            head = self.queue[0]
            now = self.actor.ports.clock.monotonic()
            if now < head.wake:
                return
            wake = self._wake(head, now) if head.row["type"] == "send_message" else None
            if wake is not None:
                head.wake = wake
                return
            self.queue.popleft()
            yield head.row

    def _wake(self, head: Waiting, now: float) -> float | None:
        """When the head send may go (None: now); sends `composing` when its time comes."""
        if not self.actor.state.logged_in:
            return self._login_wait(head, now)
        head.login_deadline = None
        behaviour = self.actor.behaviour
        slot = (self.last_send + interval(behaviour.send_rate)) if self.last_send is not None else now
        payload = head.row.get("payload") or {}
        text = payload.get("text") if payload.get("type", "text") == "text" else None
        if behaviour.typing_simulation and head.typing_until is None and text:
            seconds = typing_seconds(str(text))
            if now < slot - seconds:
                return slot - seconds  # start typing so that the text goes at its slot
            self._composing(str(payload.get("to") or ""))
            head.typing_until = now + seconds
        send_at = max(slot, head.typing_until or now)
        return send_at if now < send_at else None

    def _login_wait(self, head: Waiting, now: float) -> float | None:
        """Not logged in: while (re)connecting, wait for the login (bounded); otherwise None."""
        state = self.actor.state
        if state.active or state.retry_at is not None:
            if head.login_deadline is None:
                head.login_deadline = now + self.actor.ports.settings.send_waits_for_login
            if now < head.login_deadline:
                return min(now + LOGIN_POLL_SECONDS, head.login_deadline)
        return None  # runs now and fails `not_connected`, as any send to a disconnected session

    def _composing(self, chat: str) -> None:
        client = self.actor.client
        if client is None or not chat:
            return
        try:
            client.send_presence("composing", chat)
        except DriverError as exc:  # the text goes anyway
            self.actor.log.warning("typing simulation: the presence was refused",
                                   extra={"session_id": self.actor.session_id, "code": exc.code,
                                          "error": exc.message[:200]})
