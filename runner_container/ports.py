"""What a session actor and a media worker are given: the ports object.

Built once by `runner_container/bootstrap.py`. A port is the least the actor needs of a
collaborator (the store writes the session's state, `commands` claims and finishes
command rows and counts them, `actors` finds the actor of a session id), so an actor
can be built in a test with in-memory fakes (tests/unit).
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Protocol

from runner_container.machine import Tuning


class Clock:
    """Time and the backoff's randomness; a test gives a fake one."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(timezone.utc)

    def jitter(self) -> float:
        return random.random()


@dataclass(frozen=True)
class ActorSettings:
    runner_id: str
    lease_ttl: float = 15.0  # a command running on a runner silent for longer may be taken over
    send_waits_for_login: float = 30.0  # a send arriving while (re)connecting waits this long for the login
    tuning: Tuning = Tuning()
    history_sync: str = "recent"  # HISTORY_SYNC: off | recent | full (runner_container/history.py)


class CommandLedger:
    """The command rows as the actor uses them: claim, finish (counted), read."""

    def __init__(self, repo: Any, metrics: Any, runner_id: str, lease_ttl: float, fenced: bool = False):
        self.repo = repo
        self.metrics = metrics
        self.runner_id = runner_id
        self.lease_ttl = lease_ttl
        self.fenced = fenced  # a claim needs this runner to hold the command's slot (placement)

    def claim(self, command_id: str, session_uid: str | None = None, *,
              in_order: bool = False) -> dict[str, Any] | None:
        return self.repo.claim(command_id, self.runner_id, self.lease_ttl, session_uid=session_uid,
                               fenced=self.fenced, in_order=in_order)

    def older_queued(self, command_id: str) -> list[dict[str, Any]]:
        return self.repo.older_queued(command_id)

    def get(self, command_id: str) -> dict[str, Any] | None:
        return self.repo.get_by_id(command_id)

    def release(self, rows: list[dict[str, Any]]) -> int:
        """Claimed commands given back to `queued` (a handover before they ran)."""
        return self.repo.release([str(row["id"]) for row in rows], self.runner_id) if rows else 0

    def finish(self, row: dict[str, Any], *, ok: bool, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None) -> None:
        self.repo.finish(str(row["id"]), ok=ok, result=result, error=error)
        self.metrics.commands.labels(type=row["type"], outcome="succeeded" if ok else "failed").inc()
        created = row.get("created_at")
        if created is not None:
            self.metrics.command_latency.labels(type=row["type"]).observe(
                max(0.0, time.time() - created.timestamp()))


class Actors(Protocol):
    def actor_for(self, session_id: str) -> Any: ...

    def finished(self, actor: Any) -> None: ...


class ActorRegistry:
    """The live actors by session id; one per session at a time."""

    def __init__(self, factory: Callable[[str], Any]):
        self.factory = factory
        self.actors: dict[str, Any] = {}
        self.lock = threading.RLock()

    def actor_for(self, session_id: str) -> Any:
        with self.lock:
            actor = self.actors.get(session_id)
            if actor is None or actor.done.is_set():
                actor = self.actors[session_id] = self.factory(session_id).start()
            return actor

    def finished(self, actor: Any) -> None:
        session_id = actor.session_id
        with self.lock:
            if self.actors.get(session_id) is actor:
                del self.actors[session_id]

    def get(self, session_id: str) -> Any:
        with self.lock:
            return self.actors.get(session_id)

    def all(self) -> list[Any]:
        with self.lock:
            return list(self.actors.values())

    def held(self) -> int:
        """Sessions this runner holds now (the zemeow/Runner Sessions metric)."""
        return sum(1 for actor in self.all() if not actor.done.is_set())

    def __contains__(self, session_id: str) -> bool:
        return session_id in self.actors

    def __len__(self) -> int:
        return len(self.actors)


@dataclass
class SessionPorts:
    store: Any  # SessionStore
    commands: CommandLedger
    driver: Any  # runner_container.drivers.base.Driver
    metrics: Any  # RunnerMetrics
    events: Any  # EventSender (send(envelopes))
    clock: Clock
    settings: ActorSettings
    log: Any
    message_store: Any = None  # MessageStoreRepository (find, find_many by session row id)
    pending: Any = None  # PendingMediaRepository
    proxies: Any = None  # runner_container.proxy.ProxyDialer
    media: Any = None  # InboundMedia
    actors: Optional[Actors] = None
