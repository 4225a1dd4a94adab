"""SQL of webhook delivery: session webhook configs, deliveries, attempts, endpoints (breaker)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database
from chalicelib.repositories.webhook_batch import write_outcomes

FINAL_STATUSES = ("succeeded", "failed", "skipped")
# Per-session reads are scoped to the row that has the session_id NOW: deliveries of a
# deleted session of the same name (kept for its tombstone) are never another's to read.
_OWNER = "session_uid = (SELECT id FROM sessions WHERE session_id = %s)"
# the previous webhook secrets whose promised expiry is still ahead (migration 0059)
_LIVE_PREVIOUS = ("ARRAY(SELECT p.enc FROM unnest({t}webhook_secrets_prev_enc, {t}webhook_secrets_prev_expires_at) "
                  "AS p(enc, expires_at) WHERE p.expires_at > now() ORDER BY p.expires_at)")
REDELIVERABLE = ("succeeded", "failed", "skipped")
Endpoint = tuple  # (session row id as text, URL): one circuit breaker


class WebhookRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- configuration ------------------------------------------------------------------
    def session_configs(self, session_uids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Webhook routing by session row id: a live session's, else its tombstone's (a deleted
        row's last routing, migrations 0012 and 0050). Never by the reusable text session_id."""
        uids = sorted(set(session_uids))
        if not uids:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT id::text AS session_uid, session_id, webhook_url, webhook_events, webhook_secret_enc,
                       {live} AS webhook_secrets_live_enc
                FROM sessions WHERE id = ANY(%s::uuid[])
                UNION ALL
                SELECT t.session_uid::text, t.session_id, t.webhook_url, t.webhook_events, t.webhook_secret_enc,
                       {live_t} AS webhook_secrets_live_enc
                FROM session_tombstones t
                WHERE t.session_uid = ANY(%s::uuid[])
                """.format(live=_LIVE_PREVIOUS.format(t=""), live_t=_LIVE_PREVIOUS.format(t="t.")),
                (uids, uids)).fetchall()
        return {row["session_uid"]: row for row in rows}

    def current_session_uids(self, session_ids: Iterable[str]) -> dict[str, str]:
        """session_id -> the row id of the session that has it now (for envelopes written
        before migration 0050, which carry no `metadata.session_uid`)."""
        ids = sorted(set(session_ids))
        if not ids:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute("SELECT session_id, id::text AS uid FROM sessions WHERE session_id = ANY(%s)",
                                (ids,)).fetchall()
        return {row["session_id"]: row["uid"] for row in rows}

    def rotate_secret(self, session_id: str, encrypt_new: Any, grace_seconds: float,
                      max_previous: int) -> dict[str, Any] | None:
        """New secret -> current; the current one joins the previous secrets, each signing
        until its own expiry (`grace_seconds` from now for the one replaced; those already
        there keep theirs: a promise is never shortened). Expired ones are dropped. With
        `max_previous` still live, nothing changes and the row says `refused`.

        Returns None (no session), the row without `webhook_url` (no webhook), or the row
        with `previous` = [(secret_enc, expires_at)] oldest first, after the rotation."""
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT session_id, webhook_url, webhook_secret_enc, webhook_secrets_prev_enc, "
                "webhook_secrets_prev_expires_at, now() AS now FROM sessions WHERE session_id = %s FOR UPDATE",
                (session_id,)).fetchone()
            if row is None or not row["webhook_url"]:
                return row
            previous = sorted(((enc, expires) for enc, expires in zip(row["webhook_secrets_prev_enc"],
                                                                     row["webhook_secrets_prev_expires_at"])
                               if expires > row["now"]), key=lambda pair: pair[1])
            if row["webhook_secret_enc"] is not None:
                if len(previous) >= max_previous:
                    return {**row, "previous": previous, "refused": True}
                previous.append((row["webhook_secret_enc"], row["now"] + timedelta(seconds=grace_seconds)))
            conn.execute(
                """
                UPDATE sessions SET webhook_secret_enc = %s, webhook_secrets_prev_enc = %s,
                       webhook_secrets_prev_expires_at = %s, updated_at = now()
                WHERE session_id = %s
                """, (encrypt_new, [enc for enc, _ in previous], [expires for _, expires in previous], session_id))
            return {**row, "previous": previous, "refused": False}

    # -- endpoints (circuit breaker) ------------------------------------------------------
    # An endpoint is (session row id, URL): each session's breaker is its own, so no tenant
    # can open, disable or re-enable the breaker of another tenant's URL (issue 11, finding 15).
    def endpoints(self, endpoints: Iterable[Endpoint]) -> dict[Endpoint, dict[str, Any]]:
        keys = sorted(set(endpoints))
        if not keys:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT e.session_uid::text AS session_uid, e.url, state, consecutive_failures, opened_at,
                       probe_started_at, disabled_reason,
                       extract(epoch FROM now() - opened_at) AS open_for,
                       extract(epoch FROM now() - probe_started_at) AS probing_for
                FROM webhook_endpoints e
                JOIN unnest(%s::uuid[], %s::text[]) AS k(session_uid, url) USING (session_uid, url)
                """, ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
        return {(row["session_uid"], row["url"]): row for row in rows}

    def claim_probe(self, endpoint: Endpoint, cooldown: float, probe_timeout: float) -> bool:
        """Open (cooled down) or stale half-open -> half-open, for exactly one caller."""
        with self.db.connection() as conn:
            row = conn.execute(
                """
                UPDATE webhook_endpoints SET state = 'half_open', probe_started_at = now(), updated_at = now()
                WHERE session_uid = %s AND url = %s AND (
                    (state = 'open' AND opened_at <= now() - make_interval(secs => %s))
                 OR (state = 'half_open' AND probe_started_at <= now() - make_interval(secs => %s)))
                RETURNING url
                """, (*endpoint, cooldown, probe_timeout)).fetchone()
        return row is not None

    @staticmethod
    def record_failures(conn: psycopg.Connection, endpoint: Endpoint, failures: int, threshold: int) -> str:
        row = conn.execute(
            """
            INSERT INTO webhook_endpoints AS e (session_uid, url, state, consecutive_failures, last_failure_at,
                                                opened_at)
            VALUES (%(uid)s, %(url)s, CASE WHEN %(n)s >= %(t)s THEN 'open' ELSE 'closed' END, %(n)s, now(),
                    CASE WHEN %(n)s >= %(t)s THEN now() END)
            ON CONFLICT (session_uid, url) DO UPDATE SET
                consecutive_failures = e.consecutive_failures + %(n)s,
                last_failure_at = now(),
                state = CASE WHEN e.state = 'disabled' THEN 'disabled'
                             WHEN e.state = 'half_open' THEN 'open'
                             WHEN e.consecutive_failures + %(n)s >= %(t)s THEN 'open'
                             ELSE e.state END,
                opened_at = CASE WHEN e.state = 'half_open'
                                   OR (e.state = 'closed' AND e.consecutive_failures + %(n)s >= %(t)s)
                                 THEN now() ELSE e.opened_at END,
                probe_started_at = NULL,
                updated_at = now()
            RETURNING state
            """, {"uid": endpoint[0], "url": endpoint[1], "n": failures, "t": threshold}).fetchone()
        return row["state"]

    @staticmethod
    def record_success(conn: psycopg.Connection, endpoint: Endpoint) -> None:
        conn.execute(
            """
            UPDATE webhook_endpoints SET state = CASE WHEN state = 'disabled' THEN 'disabled' ELSE 'closed' END,
                   consecutive_failures = 0, last_success_at = now(), probe_started_at = NULL,
                   opened_at = CASE WHEN state = 'disabled' THEN opened_at END, updated_at = now()
            WHERE session_uid = %s AND url = %s
            """, endpoint)

    @staticmethod
    def disable(conn: psycopg.Connection, endpoint: Endpoint, reason: str) -> None:
        conn.execute(
            """
            INSERT INTO webhook_endpoints AS e (session_uid, url, state, disabled_at, disabled_reason, last_failure_at)
            VALUES (%s, %s, 'disabled', now(), %s, now())
            ON CONFLICT (session_uid, url) DO UPDATE SET state = 'disabled', disabled_at = now(),
                disabled_reason = excluded.disabled_reason, last_failure_at = now(), updated_at = now()
            """, (*endpoint, reason))

    def enable(self, endpoint: Endpoint) -> bool:
        with self.db.connection() as conn:
            cur = conn.execute(
                """
                UPDATE webhook_endpoints SET state = 'closed', consecutive_failures = 0, opened_at = NULL,
                       probe_started_at = NULL, disabled_at = NULL, disabled_reason = NULL, updated_at = now()
                WHERE session_uid = %s AND url = %s AND state <> 'closed'
                """, endpoint)
        return cur.rowcount == 1

    # -- parked deliveries (breaker open) -------------------------------------------------
    _PARKED = "session_uid = %s AND url = %s AND status = 'retrying' AND next_attempt_at IS NULL"

    def oldest_parked(self, endpoint: Endpoint) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT *, extract(epoch FROM now() - created_at) AS age FROM webhook_deliveries "
                f"WHERE {self._PARKED} ORDER BY created_at LIMIT 1", endpoint).fetchone()

    def release_parked(self, endpoint: Endpoint, limit: int = 5000) -> list[dict[str, Any]]:
        """Parked deliveries of the endpoint -> pending (their delivery messages are sent by the caller)."""
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(), updated_at = now()
                WHERE id IN (SELECT id FROM webhook_deliveries WHERE {self._PARKED}
                             ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING id, attempt
                """, (*endpoint, limit)).fetchall()

    def fail_parked(self, endpoint: Endpoint, reason: str) -> int:
        with self.db.connection() as conn:
            cur = conn.execute("UPDATE webhook_deliveries SET status = 'failed', error = %s, updated_at = now() "
                               f"WHERE {self._PARKED}", (reason, *endpoint))
        return cur.rowcount

    def expire_parked(self, endpoint: Endpoint, max_age: float) -> int:
        with self.db.connection() as conn:
            cur = conn.execute(
                f"""
                UPDATE webhook_deliveries SET status = 'failed', updated_at = now(),
                       error = 'endpoint unavailable (circuit breaker open) for the whole retry schedule'
                WHERE {self._PARKED} AND created_at < now() - make_interval(secs => %s)
                """, (*endpoint, max_age))
        return cur.rowcount

    # -- deliveries ---------------------------------------------------------------------
    def deliveries_by_key(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        if not keys:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute(
                """
                SELECT d.id, d.event_id, d.url, d.status, d.attempt, d.round_attempt
                FROM webhook_deliveries d
                JOIN unnest(%s::uuid[], %s::text[]) AS k(event_id, url) USING (event_id, url)
                """, ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
        return {(str(r["event_id"]), r["url"]): r for r in rows}

    def deliveries_by_id(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT *, extract(epoch FROM now() - created_at) AS age FROM webhook_deliveries "
                "WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
        return {str(r["id"]): r for r in rows}

    # one statement per dispatcher batch (chalicelib/repositories/webhook_batch.py)
    write_outcomes = staticmethod(write_outcomes)

    def create_pending(self, row: dict[str, Any]) -> dict[str, Any]:
        with self.db.connection() as conn:
            return conn.execute(
                """
                INSERT INTO webhook_deliveries (id, event_id, session_id, session_uid, event, url, status, attempt,
                                                payload, next_attempt_at, enqueued_at, target)
                VALUES (%(id)s, %(event_id)s, %(session_id)s, %(session_uid)s, %(event)s, %(url)s, 'pending', 0, %(payload)s,
                        now(), %(enqueued_at)s, %(target)s)
                RETURNING id, event_id, status, attempt
                """, {**row, "payload": Jsonb(row["payload"])}).fetchone()

    def mark_pending(self, session_id: str, delivery_id: str) -> dict[str, Any] | None:
        """A redeliver: a final delivery starts a new round. None when it is not redeliverable."""
        with self.db.connection() as conn:
            return conn.execute(
                """
                UPDATE webhook_deliveries SET status = 'pending', round_attempt = 0, next_attempt_at = now(),
                       error = NULL, updated_at = now()
                WHERE id = %s AND session_uid = (SELECT id FROM sessions WHERE session_id = %s) AND status = ANY(%s)
                RETURNING id, session_uid, url, attempt, status
                """, (delivery_id, session_id, list(REDELIVERABLE))).fetchone()

    def mark_pending_bulk(self, session_id: str, *, statuses: list[str], since: datetime | None,
                          event: str | None, limit: int) -> list[dict[str, Any]]:
        where, params = [_OWNER, "status = ANY(%s)"], [session_id, statuses]
        if since is not None:
            where.append("created_at >= %s")
            params.append(since)
        if event:
            where.append("event = %s")
            params.append(event)
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                UPDATE webhook_deliveries SET status = 'pending', round_attempt = 0, next_attempt_at = now(),
                       error = NULL, updated_at = now()
                WHERE id IN (SELECT id FROM webhook_deliveries WHERE {' AND '.join(where)}
                             ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED)
                RETURNING id, session_uid, url, attempt, status
                """, [*params, limit]).fetchall()

    def get_delivery(self, session_id: str, delivery_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute(f"SELECT * FROM webhook_deliveries WHERE id = %s AND {_OWNER}",
                               (delivery_id, session_id)).fetchone()
            if row is None:
                return None
            row["attempts"] = conn.execute(
                "SELECT attempt, at, outcome, http_status, latency_ms, response_excerpt, error "
                "FROM webhook_attempts WHERE delivery_id = %s ORDER BY attempt, id", (delivery_id,)).fetchall()
        return row

    def list_deliveries(self, session_id: str, *, status: str | None, event: str | None,
                        since: datetime | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        where, params = [_OWNER], [session_id]
        if status:
            where.append("status = %s")
            params.append(status)
        if event:
            if event.endswith(".*"):
                where.append("event LIKE %s")
                params.append(event[:-1].replace("_", "\\_") + "%")
            else:
                where.append("event = %s")
                params.append(event)
        if since is not None:
            where.append("created_at >= %s")
            params.append(since)
        clause = " AND ".join(where)
        with self.db.connection() as conn:
            total = conn.execute(f"SELECT count(*) AS n FROM webhook_deliveries WHERE {clause}",
                                 params).fetchone()["n"]
            rows = conn.execute(
                f"SELECT * FROM webhook_deliveries WHERE {clause} ORDER BY created_at DESC, id "
                "LIMIT %s OFFSET %s", [*params, limit, offset]).fetchall()
        return rows, total

    # -- stats --------------------------------------------------------------------------
    def stats(self, session_id: str | None, window_seconds: float) -> dict[str, Any]:
        owned = f"d.{_OWNER}"
        scope, also, params = (f"WHERE {owned}", f"AND {owned}", [session_id]) if session_id else ("", "", [])
        with self.db.connection() as conn:
            by_status = conn.execute(
                f"SELECT d.status, count(*) AS n FROM webhook_deliveries d {scope} GROUP BY d.status",
                params).fetchall()
            window = conn.execute(
                f"""
                SELECT count(*) FILTER (WHERE a.outcome = 'succeeded') AS ok,
                       count(*) AS attempts,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms)
                           FILTER (WHERE a.latency_ms IS NOT NULL) AS p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY a.latency_ms)
                           FILTER (WHERE a.latency_ms IS NOT NULL) AS p95
                FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
                WHERE a.at >= now() - make_interval(secs => %s) {also}
                """, [window_seconds, *params]).fetchone()
            if session_id:
                breakers = conn.execute(
                    """
                    SELECT e.url, e.state, e.consecutive_failures, e.opened_at, e.disabled_reason
                    FROM webhook_endpoints e
                    WHERE e.state <> 'closed' AND e.session_uid = (SELECT id FROM sessions WHERE session_id = %s)
                    ORDER BY e.url
                    """, (session_id,)).fetchall()
            else:
                breakers = conn.execute(
                    "SELECT url, state, consecutive_failures, opened_at, disabled_reason FROM webhook_endpoints "
                    "WHERE state <> 'closed' ORDER BY url").fetchall()
        return {"by_status": {r["status"]: r["n"] for r in by_status}, "window": window, "breakers": breakers}
