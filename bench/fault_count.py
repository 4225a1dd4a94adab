"""Counting a fault scenario from the records, not from logs: the `commands` table (status),
the emulator's wire log (what went out to "WhatsApp", one line per message actually sent),
`event_outbox` (events produced), the receiver's 2xx answers (delivered), and
`webhook_deliveries` (visibly failed: in the delivery log as failed, i.e. the DLQ of
deliveries; skipped ones are counted with them) plus the events DLQ queue.

Lost, for a command: accepted (a 2xx answer, or a row in the table) and neither sent nor
`failed`. For an event: produced and neither delivered nor failed/skipped in the log. For a
received message: the emulator handed it to a runner and no `message.received` event holds
its text once the scenario has drained. A runner holds a received message while the
database is down and writes it once it answers (`SessionActor._received_durably`), so one
not written yet is waiting, not lost: the recovery and the drain wait for it as they wait
for commands and events, and only one still missing after the drain counts as lost.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.fault_load import Load
from chalicelib.placement import SLOTS
from chalicelib.repositories.placement import PlacementRepository
from bench.fault_receiver import FaultReceiver
from bench.fault_stack import FaultStack

SETTLED_DELIVERY = ("failed", "skipped")
# A received message the emulator handed to a runner at most this long before that runner's
# SIGKILL, and never written, is lost in the one window zemeow cannot close from Python:
# whatsmeow acknowledges a message before any handler runs (neonize 0.5.2 does not set
# SynchronousAck), and the emulator, like WhatsApp, never sends it again. Counted apart
# (`at kill`, still in `in lost`), so that any other loss stands out.
ACK_WINDOW = 1.0


@dataclass
class Row:
    scenario: str
    accepted: int = 0
    once: int = 0
    twice: int = 0
    cmd_failed: int = 0
    cmd_lost: int = 0
    events: int = 0
    delivered: int = 0
    delivered_twice: int = 0
    dlq: int = 0
    ev_lost: int = 0
    recovery_s: float | None = None
    api_5xx: int = 0
    inbound_sent: int = 0
    inbound_lost: int = 0
    inbound_at_kill: int = 0  # of inbound_lost: handed over in the ACK_WINDOW before a SIGKILL
    notes: str = ""

    @property
    def lost(self) -> int:
        return self.cmd_lost + self.ev_lost + self.inbound_lost

    HEADER = ("scenario", "accepted", "once", "twice", "cmd failed", "cmd lost", "events", "delivered",
              "deliv. twice", "DLQ/failed", "ev lost", "recovery s", "API 5xx", "inbound", "in lost", "at kill")

    def cells(self) -> list[str]:
        values = [getattr(self, f.name) for f in fields(self) if f.name != "notes"]
        return [("-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)) for v in values]


def table(rows: list[Row]) -> str:
    grid = [list(Row.HEADER)] + [r.cells() for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    out = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
           for line in grid]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out) + "".join(f"\n  {r.scenario}: {r.notes}" for r in rows if r.notes)


def connect(stack: FaultStack) -> psycopg.Connection:
    return psycopg.connect(stack.env["DATABASE_URL"], autocommit=True, row_factory=dict_row, connect_timeout=3)


def wire_counts(stack: FaultStack, tag: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    try:
        lines = stack.wire_log.read_text().splitlines()
    except FileNotFoundError:
        return counts
    prefix = f"{tag}-"
    for line in lines:
        try:
            text = json.loads(line).get("text") or ""
        except ValueError:
            continue
        if text.startswith(prefix):
            counts[text] += 1
    return counts


class Tally:
    """What the records say about one scenario (tag), at one moment."""

    def __init__(self, stack: FaultStack, load: Load, receiver: FaultReceiver, since: float):
        self.stack, self.load, self.receiver, self.since = stack, load, receiver, since
        self.commands: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.settled: dict[str, str] = {}  # event id -> failed | skipped
        self.received: set[str] = set()  # texts of the message.received events written so far
        self.until: float | None = None

    def read(self, until: float | None = None) -> "Tally":
        sids = [s.sid for s in self.load.sessions]
        bound = "AND created_at <= to_timestamp(%(until)s)" if until is not None else ""
        params = {"tag": f"{self.load.tag}-%", "sids": sids, "since": self.since, "until": until}
        self.until = until
        with connect(self.stack) as conn:
            self.commands = {r["text"]: r for r in conn.execute(
                "SELECT id::text, payload->>'text' AS text, status, attempts, created_at FROM commands "
                f"WHERE type = 'send_message' AND session_id = ANY(%(sids)s) AND payload->>'text' LIKE %(tag)s {bound}",
                params)}
            self.events = {r["id"]: r for r in conn.execute(
                "SELECT id::text, event, envelope->'data'->>'text' AS text FROM event_outbox "
                f"WHERE session_id = ANY(%(sids)s) AND created_at >= to_timestamp(%(since)s) {bound}", params)}
            ids = list(self.events)
            self.settled = {r["event_id"]: r["status"] for r in conn.execute(
                "SELECT event_id::text, status FROM webhook_deliveries WHERE event_id = ANY(%(ids)s::uuid[]) "
                "AND status = ANY(%(settled)s)", {"ids": ids, "settled": list(SETTLED_DELIVERY)})}
            # whenever written: a message received before `until` may be written after it
            self.received = {r["text"] for r in conn.execute(
                "SELECT envelope->'data'->>'text' AS text FROM event_outbox WHERE session_id = ANY(%(sids)s) "
                "AND event = 'message.received' AND created_at >= to_timestamp(%(since)s) "
                "AND envelope->'data'->>'text' LIKE %(tag)s", params)}
        return self

    def unfinished(self, delivered: Counter[str]) -> tuple[int, int, int]:
        """(commands not finished, events neither delivered nor settled, received messages
        (taken by the emulator before `until`) not written as an event yet)."""
        commands = sum(1 for r in self.commands.values() if r["status"] in ("queued", "running"))
        events = sum(1 for e in self.events if not delivered[e] and e not in self.settled)
        with self.load.lock:
            taken = [t for t, at in self.load.inbound_at.items() if self.until is None or at <= self.until]
        return commands, events, sum(1 for t in taken if t not in self.received and not self.at_kill(t))

    def at_kill(self, text: str) -> bool:
        """Handed to a runner within ACK_WINDOW before that runner was SIGKILLed."""
        killed = self.stack.killed_at.get(self.load.inbound_runner.get(text, ""))
        at = self.load.inbound_at.get(text)
        return killed is not None and at is not None and killed - ACK_WINDOW <= at <= killed + 0.5

    def row(self, scenario: str) -> Row:
        wire = wire_counts(self.stack, self.load.tag)
        delivered = self.receiver.delivered()
        row = Row(scenario, api_5xx=self.load.stats.server_errors)
        accepted = set(self.commands) | set(self.load.accepted)
        row.accepted = len(accepted)
        for text in accepted:
            sent = wire[text]
            status = (self.commands.get(text) or {}).get("status")
            if sent == 1:
                row.once += 1
            elif sent > 1:
                row.twice += 1
            elif status == "failed":
                row.cmd_failed += 1
            else:
                row.cmd_lost += 1
        row.events = len(self.events)
        for event_id in self.events:
            if delivered[event_id]:
                row.delivered += 1
                row.delivered_twice += delivered[event_id] > 1
            elif event_id in self.settled:
                row.dlq += 1
            else:
                row.ev_lost += 1
        row.inbound_sent = len(self.load.inbound)
        unwritten = [text for text in self.load.inbound if text not in self.received]
        row.inbound_lost = len(unwritten)
        row.inbound_at_kill = sum(1 for text in unwritten if self.at_kill(text))
        extra = []
        if self.load.abandoned:
            extra.append(f"{len(self.load.abandoned)} send(s) never answered (client gave up)")
        if self.load.refused:
            extra.append(f"4xx answers: {dict(Counter(self.load.refused.values()))}")
        if self.load.inbound_missed:
            extra.append(f"{self.load.inbound_missed} inbound not injected (no runner held the session)")
        if self.load.stats.no_answer:
            extra.append(f"{self.load.stats.no_answer} API requests unanswered")
        row.notes = "; ".join(extra)
        return row


def wait_recovered(stack: FaultStack, load: Load, receiver: FaultReceiver, since: float, fault_end: float,
                   timeout: float, expect_runners: int, waiting: list[str] | None = None) -> float | None:
    """Seconds from `fault_end` (epoch) until everything accepted or produced before it is done
    (commands finished, events delivered or settled, received messages written), the API is
    healthy and the live runners hold every slot; None if that did not happen within
    `timeout`, and then `waiting` (when given) says what was still missing at the end."""
    from bench.fault_load import http  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    missing: list[str] = []
    while time.monotonic() < deadline:
        try:
            tally = Tally(stack, load, receiver, since).read(until=fault_end)
            commands, events, inbound = tally.unfinished(receiver.delivered())
            healthy = http("GET", f"{stack.api_url}/health", timeout=5)[0] == 200
            owners = slot_owners(stack)
            slots_held = (len(owners) == SLOTS and None not in owners.values()
                          and len(set(owners.values())) >= min(expect_runners, 1))
            unheld = sum(1 for v in owners.values() if v is None)
            missing = [what for what, bad in (
                (f"{commands} command(s) unfinished", commands), (f"{events} event(s) undelivered", events),
                (f"{inbound} received message(s) unwritten", inbound), ("API unhealthy", not healthy),
                (f"slots not all held: {unheld} without a live holder, holders {set(owners.values())}",
                 not slots_held)) if bad]
        except Exception as exc:  # noqa: BLE001 - a part still down
            missing = [f"{exc.__class__.__name__}: {str(exc)[:100]}"]
        if not missing:
            return max(0.0, time.time() - fault_end)
        time.sleep(0.25)
    if waiting is not None:
        waiting[:] = missing
    return None


def slot_owners(stack: FaultStack) -> dict[int, str | None]:
    """Placement: slot -> its holder when that runner is alive, else None."""
    live = set(stack.live_runners())
    with connect(stack) as conn:
        holders = PlacementRepository.holders(conn)
    return {slot: (runner if runner in live else None) for slot, runner in holders.items()}


def wait_drained(stack: FaultStack, load: Load, receiver: FaultReceiver, since: float, timeout: float) -> Tally:
    """After the load stops: wait until every command, event and received message of the
    scenario is settled (a received message: written as an event)."""
    deadline = time.monotonic() + timeout
    tally = Tally(stack, load, receiver, since)
    while True:
        try:
            tally.read()
            if tally.unfinished(receiver.delivered()) == (0, 0, 0) or time.monotonic() > deadline:
                return tally
        except Exception:  # noqa: BLE001 - a part still down
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
