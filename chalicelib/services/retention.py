"""The pruning job: every retention rule, batch after batch, within a time budget.

Runs hourly: `prune_retention` in app.py (`@app.schedule`, an EventBridge rule in AWS;
locally devstack's bridge invokes the same handler, see devstack/schedule_bridge.py).
Each batch is its own short transaction (chalicelib/repositories/retention.py); between
batches the job yields for `pause` seconds so that writers and autovacuum keep up. It
stops at the time budget (before the Lambda's timeout) and the next run continues where
this one stopped: the rules are idempotent, nothing is remembered between runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from chalicelib.db import Database
from chalicelib.repositories.retention import RULES, RetentionRepository, Rule


@dataclass
class PruneReport:
    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0
    complete: bool = True  # False: the budget ran out with rows left


class RetentionService:
    def __init__(self, db: Database, retention: Mapping[str, float | None], *, batch_size: int = 1000,
                 budget: float = 25.0, pause: float = 0.0, repo: RetentionRepository | None = None,
                 logger: Any = None):
        self.db = db
        self.retention = retention  # rule name -> seconds kept, None: kept forever
        self.batch_size = batch_size
        self.budget = budget
        self.pause = pause
        self.repo = repo or RetentionRepository()
        self.logger = logger

    def rules(self) -> list[tuple[Rule, float]]:
        return [(rule, self.retention[rule.name]) for rule in RULES if self.retention.get(rule.name) is not None]

    def run(self) -> PruneReport:
        """Each rule gets an equal share of what is left of the budget, so a large backlog in
        one table (retention just turned on) never starves the others."""
        report = PruneReport()
        started = time.monotonic()
        rules = self.rules()
        with self.db.connection() as conn:
            for index, (rule, keep) in enumerate(rules):
                share = (self.budget - (time.monotonic() - started)) / (len(rules) - index)
                deadline = time.monotonic() + share
                total = 0
                while True:
                    deleted = self.repo.prune_batch(conn, rule, keep, self.batch_size)
                    report.batches += 1
                    total += deleted
                    if deleted < self.batch_size:
                        break
                    if time.monotonic() >= deadline:
                        report.complete = False
                        break
                    if self.pause:
                        time.sleep(self.pause)
                report.deleted[rule.name] = total
        report.seconds = round(time.monotonic() - started, 3)
        if self.logger:
            self.logger.info("retention pruned", extra={"deleted": report.deleted, "batches": report.batches,
                                                        "seconds": report.seconds, "complete": report.complete})
        return report
