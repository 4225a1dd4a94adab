"""Shard leases: which runner consumes which command shard.

Each tick a runner renews the leases it holds (expires_at = now + RUNNER_LEASE_TTL),
works out its fair share (ceil(shards / live runners)), gives back what it holds beyond
that share and claims free or expired shards up to it (`LeaseRepository.rebalance`, one
transaction). A runner that dies stops renewing: after the TTL its shards are expired and
the others take them ("steal on expiry"). A graceful stop releases everything at once.
"""
from __future__ import annotations

from chalicelib.db import Database
from chalicelib.repositories.leases import LeaseRepository


class LeaseManager:
    def __init__(self, db: Database, runner_id: str, shards: int, ttl: float):
        self.repo = LeaseRepository(db)
        self.runner_id = runner_id
        self.shards = shards
        self.ttl = ttl
        self.owned: set[int] = set()

    def tick(self) -> tuple[set[int], set[int]]:
        """Renew, rebalance, claim. Returns (gained, lost) since the last tick."""
        held = self.repo.rebalance(self.runner_id, self.shards, self.ttl)
        gained, lost = held - self.owned, self.owned - held
        self.owned = held
        return gained, lost

    def release(self, shards: set[int] | None = None) -> None:
        targets = sorted(self.owned if shards is None else shards)
        if targets:
            self.repo.release(self.runner_id, targets)
        self.owned -= set(targets)
