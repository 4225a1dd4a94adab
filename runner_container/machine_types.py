"""The session machine's vocabulary: its state, the inputs it steps on and the effects it
asks for (`runner_container/machine.py` holds the transitions)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Union

from chalicelib.repositories.session_store import StateChange


@dataclass(frozen=True)
class Backoff:
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, jitter: float) -> float:
        """Exponential with 'equal jitter' (`jitter` in [0, 1)): half fixed, half random,
        so retries spread out."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return ceiling / 2 + jitter * (ceiling / 2)


@dataclass(frozen=True)
class Tuning:
    qr_code_timeout: float = 60.0
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class SessionState:
    status: str | None = None
    jid: str | None = None
    logged_in: bool = False
    active: bool = False  # a client is connecting or connected
    proxy_url: str | None = None  # the proxy the current client dials through
    attempt: int = 0
    retry_at: float | None = None
    qr_deadline: float | None = None
    qr_seen: bool = False

    def dropped(self) -> "SessionState":
        return replace(self, active=False, logged_in=False, qr_deadline=None)

    def retry_due(self, now: float) -> bool:
        return self.retry_at is not None and now >= self.retry_at


# -- effects: what the actor does, in order ----------------------------------------------
@dataclass(frozen=True)
class Write:
    change: StateChange


@dataclass(frozen=True)
class DropClient:
    """Close the current client; its late callbacks are ignored from here on."""


@dataclass(frozen=True)
class OpenClient:
    jid: str | None
    dial: str | None  # the checked proxy URL the driver dials


@dataclass(frozen=True)
class Dial:
    """`client.connect()`; a DriverError comes back as a `Failed` input."""


@dataclass(frozen=True)
class Connect:
    """Read what a connect needs (row, device, proxy) and step `StartConnect`."""
    reason: str


@dataclass(frozen=True)
class FailDeferred:
    code: str
    message: str


@dataclass(frozen=True)
class FlushDeferred:
    """Run the commands that waited for the login."""


@dataclass(frozen=True)
class ForgetDevice:
    jid: str | None


@dataclass(frozen=True)
class Count:
    metric: str  # "errors" (with code) or "reconnects"
    code: str | None = None


Effect = Union[Write, DropClient, OpenClient, Dial, Connect, FailDeferred, FlushDeferred, ForgetDevice, Count]


# -- inputs -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxyPlan:
    """The session's proxy: its URL and the checked one to dial, or why there is none."""
    url: str | None = None
    dial: str | None = None
    problem: tuple[str, str, bool] | None = None  # (code, message, retry)


@dataclass(frozen=True)
class StartConnect:
    reason: str
    row: dict[str, Any]
    device_present: bool
    proxy: ProxyPlan
    now: float = 0.0
    jitter: float = 0.5


@dataclass(frozen=True)
class Failed:
    code: str
    message: str
    retry: bool
    now: float
    jitter: float = 0.5
    row: dict[str, Any] | None = None  # needed when `retry`


@dataclass(frozen=True)
class DriverEvent:
    kind: str
    data: dict[str, Any]
    now: float
    wall: datetime
    jitter: float = 0.5
    row: dict[str, Any] | None = None  # needed for `disconnected`, `retryable`


@dataclass(frozen=True)
class Tick:
    now: float
    deferred_due: bool = False
    waited: float = 30.0  # how long deferred commands waited for the login
    row: dict[str, Any] | None = None  # needed when `state.retry_due(now)`


@dataclass(frozen=True)
class Reconcile:
    row: dict[str, Any]
    proxy_url: str | None = None  # the row's proxy URL now
    proxy_unreadable: bool = False


@dataclass(frozen=True)
class Requested:
    """A command that changes the state: connect, disconnect, pair_phone, logout, stop."""
    command: str
    jid: str | None = None  # logout: the device to forget
    graceful: bool = False  # stop


Input = Union[StartConnect, Failed, DriverEvent, Tick, Reconcile, Requested]
Step = tuple[SessionState, list[Effect]]
