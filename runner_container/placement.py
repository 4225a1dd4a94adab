"""Placement on the runner: the slots it holds, tick by tick (issue 18).

Each tick (`RunnerSupervisor._tick`) calls `PlacementManager.tick`, which runs
`PlacementRepository.tick` (chalicelib/repositories/placement.py: claim orphans, ask the
most loaded runners for slots, release what is over the cap; the rules are in
`chalicelib/placement.py`) and answers what changed since the last tick: slots gained (run
their backlog, start their sessions), slots lost (another runner took them while this one
was frozen: stop their sessions at once) and slots to hand over (another runner asked:
stop their sessions, then `hand_over`, so no session ever runs on two runners).

The cap this runner publishes with its heartbeat: `RUNNER_MAX_SESSIONS` (0: none), and,
while its resident memory is above `RUNNER_MEMORY_HIGH_MB`, no more than it holds now.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from chalicelib.db import Database
from chalicelib.repositories.placement import PlacementRepository


def resident_mb() -> float | None:
    """This process's resident memory (Linux /proc), None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class PlacementChange:
    gained: set[int]
    lost: set[int]
    handing: dict[int, str | None]  # slot -> next holder (None: released to no one)


class PlacementManager:
    def __init__(self, db: Database, runner_id: str, *, ttl: float, step: int,
                 max_sessions: int = 0, memory_high_mb: int = 0):
        self.repo = PlacementRepository(db)
        self.runner_id = runner_id
        self.ttl = ttl
        self.step = step
        self.max_sessions = max_sessions
        self.memory_high_mb = memory_high_mb
        self.owned: dict[int, int] = {}  # slot -> sessions in it

    @property
    def load(self) -> int:
        return sum(self.owned.values())

    def cap(self, rss_mb: float | None) -> int | None:
        """The cap to publish: RUNNER_MAX_SESSIONS, lowered to the current load while the
        memory is above RUNNER_MEMORY_HIGH_MB; None: no cap."""
        cap = self.max_sessions or None
        if self.memory_high_mb and rss_mb is not None and rss_mb > self.memory_high_mb:
            cap = min(cap, self.load) if cap is not None else self.load
        return cap

    def tick(self, rss_mb: float | None = None) -> PlacementChange:
        view = self.repo.tick(self.runner_id, ttl=self.ttl, step=self.step, cap=self.cap(rss_mb))
        before = set(self.owned)
        self.owned = dict(view.owned)
        now = set(view.owned)
        lost = before - now - set(view.handing)
        return PlacementChange(gained=now - before, lost=lost, handing=view.handing)

    def hand_over(self, slots: list[int]) -> int:
        """Call once the sessions of `slots` are stopped."""
        for slot in slots:
            self.owned.pop(slot, None)
        return self.repo.hand_over(self.runner_id, slots, self.ttl)

    def release_all(self) -> None:
        self.repo.release_all(self.runner_id)
        self.owned = {}
