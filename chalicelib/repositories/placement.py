"""`slot_placements`: which runner holds which slot (migration 0082); the SQL of placement.

`tick` is one runner's turn, in one transaction: read every live runner's load, apply
`chalicelib.placement`'s plan, and read the slots it holds (and which of them another
runner asked for).

- Claims need no lock: a runner takes orphan slots up to its own deficit, which no other
  runner's claim changes, and its UPDATE re-checks that each slot is still an orphan (one
  claimed meanwhile by another is left out). So after a runner dies every survivor claims
  its share at its next tick, the sessions down for about one heartbeat.
- Asks and releases are decided one at a time on a consistent picture: under a
  transaction-level advisory lock, taken only when the runner has something to ask for
  or release (a fleet at rest takes none), with the loads read again under it. A runner
  that does not get the lock skips that part this tick (the next tick tries again).

Reads per tick: the live runners (pg_locks read once), one GROUP BY over the 4,096 slot
rows, the runner's own slots; the orphans only when the loads show some; under the lock,
the loads again and a holder's slots to ask for. Writes: only the slots that move.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import psycopg

from chalicelib.db import Database
from chalicelib.placement import (Plan, RunnerLoad, Slot, choose_asked, plan_ask, plan_ask_empty, plan_claims,
                                  plan_release, slot_targets, targets, wants_moves)
from chalicelib.repositories.runners import live_runners_sql

PLACEMENT_LOCK = 0x7A6D706C  # pg_try_advisory_xact_lock key: "zmpl"


@dataclass
class TickView:
    """What a runner holds after its tick."""

    owned: dict[int, int] = field(default_factory=dict)  # slot -> sessions, slots it may run
    handing: dict[int, str | None] = field(default_factory=dict)  # slot -> next holder (None: released)
    balanced: bool = False  # this tick took the lock to ask for slots or release some


def _me(runners: list[RunnerLoad], runner_id: str, cap: int | None) -> RunnerLoad | None:
    """This runner among the live ones, with the cap it reports this tick."""
    me = next((r for r in runners if r.runner_id == runner_id), None)
    return RunnerLoad(**{**me.__dict__, "cap": cap}) if me is not None and cap is not None else me


class PlacementRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- the tick -----------------------------------------------------------------------
    def tick(self, runner_id: str, *, ttl: float, step: int, cap: int | None) -> TickView:
        with self.db.connection() as conn, conn.transaction():
            view = TickView()
            plan = self._plan(conn, runner_id, ttl=ttl, step=step, cap=cap)
            view.balanced = plan.locked
            self._apply(conn, runner_id, plan)
            for slot in plan.release:
                view.handing[slot] = None
            for row in conn.execute("SELECT slot, sessions, next_runner_id FROM slot_placements WHERE runner_id = %s",
                                    (runner_id,)).fetchall():
                if row["next_runner_id"] is not None:
                    view.handing[row["slot"]] = row["next_runner_id"]
                elif row["slot"] not in view.handing:
                    view.owned[row["slot"]] = row["sessions"]
            return view

    @staticmethod
    def _try_lock(conn: psycopg.Connection) -> bool:
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (PLACEMENT_LOCK,)).fetchone()
        return bool(row["ok"])

    def loads(self, conn: psycopg.Connection, ttl: float) -> tuple[list[RunnerLoad], int, list[str | None]]:
        """The live runners with their loads, the total of sessions, and the holders of
        orphan slots (None, or runners no longer alive; empty: no orphan)."""
        live = {r["id"]: r for r in conn.execute(live_runners_sql("%s"), (ttl,)).fetchall()}
        acc: dict[str, dict[str, int]] = {rid: {"load": 0, "slots": 0, "incoming": 0, "incoming_slots": 0,
                                                "outgoing": 0, "outgoing_slots": 0, "empty": 0} for rid in live}
        total = 0
        orphaned: set[str | None] = set()
        for g in conn.execute("SELECT runner_id, next_runner_id, sum(sessions)::bigint AS n, count(*) AS k, "
                              "count(*) FILTER (WHERE sessions = 0) AS e FROM slot_placements GROUP BY 1, 2").fetchall():
            n, k = int(g["n"]), int(g["k"])
            total += n
            holder, asker = g["runner_id"], g["next_runner_id"]
            if holder not in acc:
                orphaned.add(holder)
                continue
            acc[holder]["load"] += n
            acc[holder]["slots"] += k
            if asker is None:
                acc[holder]["empty"] += int(g["e"])
            if asker in acc:
                acc[holder]["outgoing"] += n
                acc[holder]["outgoing_slots"] += k
                acc[asker]["incoming"] += n
                acc[asker]["incoming_slots"] += k
        runners = [RunnerLoad(runner_id=rid, cap=live[rid]["max_sessions"], **acc[rid]) for rid in sorted(live)]
        return runners, total, sorted(orphaned, key=lambda h: h or "")

    def _plan(self, conn: psycopg.Connection, runner_id: str, *, ttl: float, step: int, cap: int | None) -> Plan:
        runners, total, orphaned = self.loads(conn, ttl)
        me = _me(runners, runner_id, cap)
        if me is None:  # not alive by the rule (no heartbeat yet, lifeline cut): take nothing
            return Plan()
        goal, slot_goal = targets(total, runners), slot_targets(runners)
        plan = Plan(dead=[h for h in orphaned if h is not None])
        orphans = self._orphans(conn, orphaned, runner_id) if orphaned else []
        plan.claim = plan_claims(me, goal[runner_id], slot_goal[runner_id], orphans)
        if any(s.sessions for s in orphans) or not wants_moves(me, runners, goal, slot_goal, total, step):
            return plan  # no asks while sessions are down: every runner claims first
        plan.locked = self._try_lock(conn)
        if plan.locked:
            self._plan_moves(conn, plan, runner_id, ttl=ttl, step=step, cap=cap, orphans=bool(orphans))
        return plan

    def _plan_moves(self, conn: psycopg.Connection, plan: Plan, runner_id: str, *, ttl: float, step: int,
                    cap: int | None, orphans: bool) -> None:
        """Under the placement lock: what to release (over the cap) or else to ask for, on the
        loads read again now that these decisions are taken one at a time."""
        runners, total, _ = self.loads(conn, ttl)
        me = _me(runners, runner_id, cap)
        if me is None:
            return
        goal, slot_goal = targets(total, runners), slot_targets(runners)
        if me.cap is not None and me.load > me.cap:
            plan.release = plan_release(me, self._own(conn, runner_id), step)
            if plan.release:
                return
        wanted = {holder: (sessions, limit) for holder, sessions, limit in plan_ask(me, runners, goal, total, step)}
        empties = dict(plan_ask_empty(me, runners, slot_goal, step)) if not orphans else {}
        plan.ask = self._choose_asks(conn, wanted, empties, step)

    @staticmethod
    def _choose_asks(conn: psycopg.Connection, wanted: dict[str, tuple[int, int]], empties: dict[str, int],
                     step: int) -> dict[str, list[int]]:
        """The slots to ask each holder for (rows locked, skipping any another runner has locked)."""
        asks: dict[str, list[int]] = {}
        for holder in sorted(set(wanted) | set(empties)):
            candidates = [Slot(r["slot"], r["sessions"]) for r in conn.execute(
                "SELECT slot, sessions FROM slot_placements WHERE runner_id = %s AND next_runner_id IS NULL "
                "FOR UPDATE SKIP LOCKED", (holder,)).fetchall()]
            sessions, limit = wanted.get(holder, (0, 0))
            chosen = choose_asked(candidates, sessions, empties.get(holder, 0), step, limit)
            if chosen:
                asks[holder] = chosen
        return asks

    @staticmethod
    def _orphans(conn: psycopg.Connection, holders: list[str | None], runner_id: str) -> list[Slot]:
        """The slots of `holders` (None: no holder; else runners no longer alive); read only
        when the loads show some. In an order of this runner's own, so that runners claiming
        at the same moment mostly pick different slots."""
        orphans = [Slot(r["slot"], r["sessions"]) for r in conn.execute(
            "SELECT slot, sessions FROM slot_placements WHERE runner_id IS NULL OR runner_id = ANY(%s) ORDER BY slot",
            ([h for h in holders if h is not None],)).fetchall()]
        random.Random(runner_id).shuffle(orphans)
        return orphans

    @staticmethod
    def _own(conn: psycopg.Connection, runner_id: str) -> list[Slot]:
        return [Slot(r["slot"], r["sessions"]) for r in conn.execute(
            "SELECT slot, sessions FROM slot_placements WHERE runner_id = %s AND next_runner_id IS NULL",
            (runner_id,)).fetchall()]

    @staticmethod
    def _apply(conn: psycopg.Connection, runner_id: str, plan: Plan) -> None:
        if plan.claim:  # still orphans: a slot another runner claimed meanwhile is left out
            conn.execute("UPDATE slot_placements SET runner_id = %s, next_runner_id = NULL, "
                         "generation = generation + 1, moved_at = now() "
                         "WHERE slot = ANY(%s) AND (runner_id IS NULL OR runner_id = ANY(%s))",
                         (runner_id, plan.claim, plan.dead))
        for holder, slots in plan.ask.items():
            conn.execute("UPDATE slot_placements SET next_runner_id = %s "
                         "WHERE slot = ANY(%s) AND runner_id = %s AND next_runner_id IS NULL",
                         (runner_id, slots, holder))
        if plan.release:  # no one asked: marked for this runner's own hand_over (to no one)
            conn.execute("UPDATE slot_placements SET next_runner_id = NULL WHERE slot = ANY(%s) AND runner_id = %s",
                         (plan.release, runner_id))

    # -- moves --------------------------------------------------------------------------
    def hand_over(self, runner_id: str, slots: list[int], ttl: float) -> int:
        """After this runner stopped the sessions of `slots`: each goes to the runner that asked
        for it when that one is alive, else to no one (an orphan, claimed at the next tick)."""
        if not slots:
            return 0
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                UPDATE slot_placements SET
                    runner_id = CASE WHEN next_runner_id IN (SELECT id FROM ({live_runners_sql('%s')}) live)
                                     THEN next_runner_id END,
                    next_runner_id = NULL, generation = generation + 1, moved_at = now()
                WHERE slot = ANY(%s) AND runner_id = %s
                """, (ttl, slots, runner_id)).rowcount

    def release_all(self, runner_id: str) -> int:
        """A runner stopping gracefully (its sessions stopped): everything it holds is an orphan."""
        with self.db.connection() as conn:
            return conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL, "
                                "generation = generation + 1, moved_at = now() WHERE runner_id = %s",
                                (runner_id,)).rowcount

    # -- reads --------------------------------------------------------------------------
    def queue_url_for_session(self, session_id: str, ttl: float) -> tuple[str | None, str | None]:
        """(holder, its command queue URL) for the session's slot; (None, None) while no live
        runner holds it."""
        with self.db.connection() as conn:
            row = conn.execute(
                f"""
                SELECT live.id, live.queue_url FROM slot_placements p
                JOIN ({live_runners_sql('%s')}) live ON live.id = p.runner_id
                WHERE p.slot = zemeow_slot_of(%s)
                """, (ttl, session_id)).fetchone()
        return (row["id"], row["queue_url"]) if row else (None, None)

    @staticmethod
    def holders(conn: psycopg.Connection) -> dict[int, str | None]:
        """Slot -> the runner holding it; None when no runner, or a stopped one, holds it
        (tests, benches, operations: what placement says now, liveness aside)."""
        rows = conn.execute("SELECT p.slot, CASE WHEN r.stopped_at IS NULL THEN p.runner_id END AS runner_id "
                            "FROM slot_placements p LEFT JOIN runners r ON r.id = p.runner_id").fetchall()
        return {r["slot"]: r["runner_id"] for r in rows}

    def snapshot(self) -> list[dict[str, Any]]:
        """Every runner holding slots, with its sessions and slots (operations, tests, the sim)."""
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT runner_id, sum(sessions)::bigint AS sessions, count(*) AS slots, "
                "count(*) FILTER (WHERE next_runner_id IS NOT NULL) AS asked "
                "FROM slot_placements GROUP BY runner_id ORDER BY runner_id NULLS FIRST").fetchall()
