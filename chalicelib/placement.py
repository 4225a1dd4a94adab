"""Placement: which runner holds which session, decided per slot (issue 18).

Sessions hash into `SLOTS` slots (`slot_of`, the same hash as `zemeow_slot_of` in SQL,
migration 0082). A runner holds whole slots, as long as it is alive (its heartbeat and its
lifeline are the lease). This module is the pure half: given the live runners and their
loads, what one runner should do this tick. `chalicelib/repositories/placement.py` reads
the state and writes the decision in one transaction; `runner_container/placement.py`
runs it every tick; `bench/scale_sim.py` runs the same code with simulated runners.

The rules:
- **Target**: the total sessions water-filled over the live runners under their caps
  (equal shares; a capped runner holds at most its cap, the others share the rest).
- **Orphans** (slots with no live holder) are claimed by runners below target, each up to
  its own deficit: a dead runner's sessions spread over every runner, not onto one, and
  all in one round (they are down until someone takes them: no step applies).
- **Asking**: with no orphans, a runner below target asks the runners furthest above their
  target for slots (`next_runner_id`) when either side is off by more than an average slot
  (`plan_ask`); the holder stops those sessions, then hands the slot over. At most `step`
  sessions per tick either way: a joining runner fills up gradually.
- **Releasing**: a runner above its cap gives slots back (to no one: orphans), `step` a tick.
- Empty slots are spread by count the same way, so new sessions land on every runner.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

SLOTS = 4096


def slot_of(session_id: str) -> int:
    """The session's slot: the low 12 bits of the first 8 bytes of sha256 (as in SQL)."""
    return int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "big") & (SLOTS - 1)


@dataclass(frozen=True)
class RunnerLoad:
    """A live runner as placement sees it."""

    runner_id: str
    load: int = 0  # sessions in the slots it holds
    slots: int = 0  # slots it holds
    incoming: int = 0  # sessions in slots it asked for, not handed over yet
    incoming_slots: int = 0
    outgoing: int = 0  # sessions in its slots that others asked for
    outgoing_slots: int = 0
    empty: int = 0  # empty slots it holds that no one asked for (what it can give by count)
    cap: int | None = None  # RUNNER_MAX_SESSIONS (or its load when its memory is high); None: no cap


@dataclass(frozen=True)
class Slot:
    slot: int
    sessions: int


@dataclass
class Plan:
    """What one runner does this tick."""

    claim: list[int] = field(default_factory=list)  # orphan slots to take now
    ask: dict[str, list[int]] = field(default_factory=dict)  # holder -> slots to ask it for
    release: list[int] = field(default_factory=list)  # own slots to give back (over cap)
    dead: list[str] = field(default_factory=list)  # holders no longer alive (their slots are orphans)
    locked: bool = False  # asks and releases were decided under the placement lock


def wants_moves(me: RunnerLoad, runners: list[RunnerLoad], goal: dict[str, int], slot_goal: dict[str, int],
                total: int, step: int) -> bool:
    """Whether this runner has anything to ask for or to release: only then does it take
    the placement lock (a fleet at rest takes none)."""
    return bool((me.cap is not None and me.load > me.cap) or plan_ask(me, runners, goal, total, step)
                or plan_ask_empty(me, runners, slot_goal, step))


def targets(total: int, runners: list[RunnerLoad]) -> dict[str, int]:
    """Sessions each live runner should hold: `total` water-filled under the caps."""
    result: dict[str, int] = {}
    remaining, left = total, len(runners)
    for runner in sorted(runners, key=lambda r: (math.inf if r.cap is None else r.cap, r.runner_id)):
        share = math.ceil(remaining / left) if left else 0
        result[runner.runner_id] = share if runner.cap is None else min(runner.cap, share)
        remaining = max(0, remaining - result[runner.runner_id])
        left -= 1
    return result


def slot_targets(runners: list[RunnerLoad]) -> dict[str, int]:
    """Slots (by count, empty or not) each live runner should hold."""
    share = math.ceil(SLOTS / max(1, len(runners)))
    return {r.runner_id: share for r in runners}


def _fill(candidates: list[Slot], want_sessions: int, want_empty: int) -> list[int]:
    """Slots from `candidates` (in order) up to `want_sessions` sessions (the last one may go
    over, so that every orphan finds a runner) and `want_empty` empty slots."""
    chosen: list[int] = []
    taken = empty = 0
    for slot in candidates:
        if slot.sessions == 0:
            if empty < want_empty:
                chosen.append(slot.slot)
                empty += 1
        elif taken < want_sessions:
            chosen.append(slot.slot)
            taken += slot.sessions
    return chosen


def plan_claims(me: RunnerLoad, target: int, slot_target: int, orphans: list[Slot]) -> list[int]:
    """Orphan slots to claim: up to this runner's deficit in sessions and in slots. Not
    bounded by the step: an orphan's sessions are down until a runner takes them, and the
    deficits of all runners together cover every orphan (targets round up)."""
    deficit = target - (me.load + me.incoming)
    slot_deficit = slot_target - (me.slots + me.incoming_slots)
    if me.cap is not None:
        deficit = min(deficit, me.cap - me.load - me.incoming)
    return _fill(orphans, max(0, deficit), max(0, slot_deficit))


def mean_slot(total: int) -> int:
    """Sessions in an average slot: imbalance below it is not worth a move."""
    return max(1, math.ceil(total / SLOTS))


def plan_ask(me: RunnerLoad, runners: list[RunnerLoad], goal: dict[str, int], total: int,
             step: int) -> list[tuple[str, int, int]]:
    """Whom to ask for how many sessions (`step` in all at most): the runners furthest above
    their target, while this runner is below its own. [(holder, sessions, limit)]: a slot
    smaller than `limit` may be taken when none fits in `sessions` (see `choose_asked`).

    A pair is worth a move when one side is off by more than an average slot. Then the side
    that is off by less may end off by less than a slot the other way: a runner short by
    many slots takes about a slot from each holder a little over (after a scale-down, the
    claims leave every survivor a little over and the last one short), and a holder over by
    many slots gives about a slot to each runner a little short (after a join). Either way
    the amount, and the limit, are less than the asker's deficit plus the holder's excess, so
    every move lowers the sum of the squared distances to target: no slot goes back and
    forth, and placement comes to rest."""
    slot = mean_slot(total)
    deficit = goal[me.runner_id] - (me.load + me.incoming)
    if me.cap is not None:
        deficit = min(deficit, me.cap - me.load - me.incoming)
    budget = step
    donors = sorted(((r.load - r.outgoing - goal[r.runner_id], r.runner_id) for r in runners
                     if r.runner_id != me.runner_id), reverse=True)
    asks: list[tuple[str, int, int]] = []
    for excess, holder in donors:
        if deficit <= 0 or budget <= 0 or excess <= 0 or (deficit <= slot and excess <= slot):
            break  # donors are sorted: none further is worth a move either
        amount = min(deficit if deficit > slot else deficit + slot, excess if excess > slot else excess + slot, budget)
        asks.append((holder, amount, min(deficit + excess, budget + 1)))
        deficit -= amount
        budget -= amount
    return asks


def plan_ask_empty(me: RunnerLoad, runners: list[RunnerLoad], slot_goal: dict[str, int],
                   step: int) -> list[tuple[str, int]]:
    """Whom to ask for how many empty slots (spread by count; `step` in all at most): the
    holders over their slot target that have empty slots to give (one over by slots that
    all hold sessions has none: asking it would find nothing, tick after tick).
    [(holder, slots)]."""
    deficit = slot_goal[me.runner_id] - (me.slots + me.incoming_slots)
    if deficit <= 1:
        return []
    deficit = min(deficit, step)
    donors = sorted(((min(r.slots - r.outgoing_slots - slot_goal[r.runner_id], r.empty), r.runner_id) for r in runners
                     if r.runner_id != me.runner_id), reverse=True)
    asks: list[tuple[str, int]] = []
    for excess, holder in donors:
        if deficit <= 0 or excess <= 0:  # a holder one over gives to one two short: both end nearer
            break
        amount = min(excess, deficit)
        asks.append((holder, amount))
        deficit -= amount
    return asks


def choose_asked(candidates: list[Slot], sessions: int, empty: int, step: int, limit: int = 0) -> list[int]:
    """From a holder's slots (not asked for yet), those to ask for: up to `sessions`
    sessions (never over: the holder must stay near its target) and `empty` empty slots.
    When no slot fits in `sessions` (the holder's small slots went to earlier askers), its
    smallest slot below `limit`: else a runner short by a few slots would ask the same
    holders tick after tick and get nothing."""
    chosen: list[int] = []
    taken = empties = 0
    for slot in sorted(candidates, key=lambda s: -s.sessions):
        if slot.sessions == 0:
            if empties < min(empty, step):
                chosen.append(slot.slot)
                empties += 1
        elif taken + slot.sessions <= min(sessions, step):
            chosen.append(slot.slot)
            taken += slot.sessions
    if not taken and sessions > 0:
        smallest = min((s for s in candidates if 0 < s.sessions < limit), key=lambda s: s.sessions, default=None)
        if smallest is not None:
            chosen.append(smallest.slot)
    return chosen


def plan_release(me: RunnerLoad, own: list[Slot], step: int) -> list[int]:
    """Own slots to give back while this runner holds more than its cap."""
    if me.cap is None or me.load <= me.cap:
        return []
    over = min(me.load - me.cap, step)
    chosen: list[int] = []
    freed = 0
    for slot in sorted((s for s in own if s.sessions > 0), key=lambda s: s.sessions):
        if freed >= over:
            break
        chosen.append(slot.slot)
        freed += slot.sessions
    return chosen
