"""Retention: which rows of the tables that grow with traffic may go, a bounded batch at a time.

Each `Rule` names a table, its key and the condition of a row past retention. A batch is
one short transaction: it picks at most `limit` keys through the rule's index (migration
0067), locking them with `FOR UPDATE SKIP LOCKED` (a row some request is updating right
now, say a failed delivery being redelivered, is skipped, never waited for), and deletes
them. `lock_timeout` bounds the wait for the table lock (only DDL conflicts with it).
No lock outlives its batch, so writers wait at most one batch (measured in
tests/integration/test_retention.py).

What is never a candidate, whatever the settings:
- an event not yet sent (`sent_at IS NULL`): it is the outbox's promise to deliver;
- a command `queued` or `running`;
- a webhook delivery `pending`, `delivering` or `retrying`, including those of a deleted
  session still retrying for its tombstone (tombstones have their own 7-day purge,
  SessionRepository.bury);
- a rate-limit bucket charged within RATE_LIMIT_RETENTION, which is at least the longest
  limit period: an older bucket has refilled and is indistinguishable from a missing one
  (a new bucket starts full), so deleting it resets no allowance. That keeps the reason
  the README gives for leaving the buckets of deleted sessions in place (deleting and
  recreating a session must not reset its allowance) while the table stops growing.
Webhook attempts go with their delivery (ON DELETE CASCADE). The message store's tables have
no natural single-column key, so their rules pick rows by `ctid` (read and deleted in the same
transaction, under the row lock: the tuple cannot move in between).
"""
from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Rule:
    name: str          # also the settings' meaning: see chalicelib/config.py Settings.retention
    table: str
    key: str
    condition: str     # past retention, with %(cutoff)s = seconds


RULES: tuple[Rule, ...] = (
    Rule("event_outbox", "event_outbox", "id",
         "sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("commands", "commands", "id",
         "status IN ('succeeded', 'failed') AND finished_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("webhook_deliveries_delivered", "webhook_deliveries", "id",
         "status = 'succeeded' AND updated_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("webhook_deliveries_failed", "webhook_deliveries", "id",
         "status IN ('failed', 'skipped') AND updated_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("audit_log", "audit_log", "id", "at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("rate_limits", "rate_limits", "bucket", "updated_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("poll_secrets", "poll_secrets", "id", "created_at < now() - make_interval(secs => %(cutoff)s)"),
    # the message store (MESSAGE_STORE_RETENTION): a message stored longer ago than the retention
    # (history included: kept as long as a live message), a chat without activity or change for as
    # long, a contact not seen for as long
    Rule("messages", "messages", "ctid", "recorded_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("chats", "chats", "ctid", "activity_at < now() - make_interval(secs => %(cutoff)s) "
                                   "AND updated_at < now() - make_interval(secs => %(cutoff)s)"),
    Rule("contacts", "contacts", "ctid", "updated_at < now() - make_interval(secs => %(cutoff)s)"),
)


class RetentionRepository:
    def __init__(self, lock_timeout: float = 2.0):
        self.lock_timeout_ms = int(lock_timeout * 1000)

    def prune_batch(self, conn: psycopg.Connection, rule: Rule, cutoff_seconds: float, limit: int) -> int:
        """Delete at most `limit` rows past `cutoff_seconds` in one transaction; the count deleted."""
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = {self.lock_timeout_ms}")
            cur = conn.execute(
                f"""
                DELETE FROM {rule.table} WHERE {rule.key} = ANY(ARRAY(
                    SELECT {rule.key} FROM {rule.table} WHERE {rule.condition}
                    LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
                """,
                {"cutoff": cutoff_seconds, "limit": limit})
            return cur.rowcount
