"""A dispatcher batch's outcomes written in ONE statement: delivery rows upserted and attempt
rows appended, the rows travelling as one JSON array each (`jsonb_to_recordset`), so a
batch costs one round trip and needs no BEGIN/COMMIT unless a breaker moves with it."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

_DELIVERY_TYPES = ("id uuid, event_id uuid, session_id text, session_uid uuid, event text, url text, status text, "
                   "attempt integer, round_attempt integer, http_status integer, latency_ms integer, "
                   "response_excerpt text, error text, payload jsonb, next_attempt_at timestamptz, "
                   "last_attempt_at timestamptz, enqueued_at timestamptz, target text")
_DELIVERY_COLUMNS = [column.split()[0] for column in _DELIVERY_TYPES.split(", ")]
_DELIVERY_COLUMNS_SELECT = ", ".join(
    ("CASE WHEN r.status = 'succeeded' THEN now() END, r.enqueued_at" if c == "enqueued_at" else f"r.{c}")
    for c in _DELIVERY_COLUMNS)
_DELIVERY_PLACEHOLDERS = "(" + ", ".join(
    ("CASE WHEN %(status)s = 'succeeded' THEN now() END, %(enqueued_at)s" if c == "enqueued_at" else f"%({c})s")
    for c in _DELIVERY_COLUMNS) + ")"
_UPSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries AS d (id, event_id, session_id, session_uid, event, url, status, attempt, "
    "round_attempt, http_status, latency_ms, response_excerpt, error, payload, next_attempt_at, last_attempt_at, "
    "succeeded_at, enqueued_at, target) {source} "
    "ON CONFLICT (event_id, url) DO UPDATE SET "
    "status = excluded.status, attempt = GREATEST(d.attempt, excluded.attempt), "
    "round_attempt = excluded.round_attempt, http_status = COALESCE(excluded.http_status, d.http_status), "
    "latency_ms = COALESCE(excluded.latency_ms, d.latency_ms), "
    "response_excerpt = COALESCE(excluded.response_excerpt, d.response_excerpt), "
    "error = excluded.error, next_attempt_at = excluded.next_attempt_at, "
    "last_attempt_at = COALESCE(excluded.last_attempt_at, d.last_attempt_at), "
    "succeeded_at = COALESCE(excluded.succeeded_at, d.succeeded_at), updated_at = now()")
_ATTEMPT_TYPES = ("delivery_id uuid, attempt integer, at timestamptz, outcome text, http_status integer, "
                  "latency_ms integer, response_excerpt text, error text")
_ATTEMPT_COLUMNS_SELECT = ("r.delivery_id, r.attempt, COALESCE(r.at, now()), r.outcome, r.http_status, r.latency_ms, "
                           "r.response_excerpt, r.error")
_ATTEMPT_PLACEHOLDERS = ("(%(delivery_id)s, %(attempt)s, COALESCE(%(at)s, now()), %(outcome)s, %(http_status)s, "
                         "%(latency_ms)s, %(response_excerpt)s, %(error)s)")
_INSERT_ATTEMPTS = ("INSERT INTO webhook_attempts (delivery_id, attempt, at, outcome, http_status, latency_ms, "
                    "response_excerpt, error) {source}")


def _dumps(value: Any) -> str:
    """JSON for jsonb_to_recordset: datetimes as ISO 8601 (read back as timestamptz), UUIDs as text."""
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v),
                      separators=(",", ":"))


def write_outcomes(conn: psycopg.Connection, deliveries: list[dict[str, Any]],
                   attempts: list[dict[str, Any]]) -> None:
    """Upsert delivery rows and append attempt rows in ONE statement (one round trip, atomic
    by itself, so no BEGIN/COMMIT is needed when nothing else is written with them): the rows
    travel as one JSON array each, read back by `jsonb_to_recordset`. A batch holding the same
    delivery twice (an SQS duplicate) is written row by row instead, in order, as one
    INSERT ... ON CONFLICT cannot touch a row twice."""
    if len({d["id"] for d in deliveries}) < len(deliveries):
        with conn.cursor() as cur:
            cur.executemany(_UPSERT_DELIVERY.format(source="VALUES " + _DELIVERY_PLACEHOLDERS),
                            [{**d, "payload": Jsonb(d["payload"])} for d in deliveries])
            if attempts:
                cur.executemany(_INSERT_ATTEMPTS.format(source="VALUES " + _ATTEMPT_PLACEHOLDERS), attempts)
        return
    statement = []
    params: list[Any] = []
    if deliveries:
        statement.append("WITH d AS (" + _UPSERT_DELIVERY.format(
            source=f"SELECT {_DELIVERY_COLUMNS_SELECT} FROM jsonb_to_recordset(%s::jsonb) AS r({_DELIVERY_TYPES})")
            + " RETURNING 1)")
        params.append(Jsonb(deliveries, dumps=_dumps))
    if attempts:
        statement.append(_INSERT_ATTEMPTS.format(
            source=f"SELECT {_ATTEMPT_COLUMNS_SELECT} FROM jsonb_to_recordset(%s::jsonb) AS r({_ATTEMPT_TYPES})"))
        params.append(Jsonb(attempts, dumps=_dumps))
    else:
        statement.append("SELECT count(*) FROM d")
    conn.execute(" ".join(statement), params)
