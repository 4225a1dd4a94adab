"""`message_log`: the few facts about recent messages that replies and reactions need.

The runner writes a row for every message a session sends or receives (in the same
transaction as the message's event) and reads it back when a later command quotes or
reacts to that message id. See migration 0032 for why the table exists.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import psycopg

from chalicelib.db import Database

PREVIEW_CHARS = 200  # WhatsApp's own quote preview shows about two lines


def preview_of(data: dict[str, Any]) -> Optional[str]:
    """The text a quote of this message shows: its text, else its caption or name."""
    for field in ("text", "caption", "name", "question", "filename", "display_name"):
        value = data.get(field)
        if isinstance(value, str) and value:
            return value[:PREVIEW_CHARS]
    return None


def _timestamp(value: Any) -> Optional[datetime]:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def person_jid(rendered: dict[str, Any] | None) -> str | None:
    """The JID a quote names as the author: the phone-number JID when known (WhatsApp
    clients match quotes by it; a LID only when the number is unknown), without a device."""
    if not rendered:
        return None
    if rendered.get("phone"):
        return f"{rendered['phone']}@s.whatsapp.net"
    jid = rendered.get("jid")
    if not jid:
        return None
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server}"


def log_entry(data: dict[str, Any]) -> dict[str, Any] | None:
    """A `message_log` row for a message event (None when it lacks an id or a chat)."""
    chat = (data.get("chat") or {}).get("jid")
    if not data.get("message_id") or not chat:
        return None
    return {"message_id": data["message_id"], "chat_jid": chat, "sender_jid": person_jid(data.get("from")),
            "from_me": bool(data.get("from_me")), "type": data.get("type") or "unknown",
            "preview": preview_of(data), "sent_at": data.get("timestamp")}


class MessageLogRepository:
    def __init__(self, db: Database):
        self.db = db

    @staticmethod
    def record(conn: psycopg.Connection, session_id: str, *, message_id: str, chat_jid: str,
               sender_jid: Optional[str], from_me: bool, type: str, preview: Optional[str],
               sent_at: Any = None) -> None:
        conn.execute(
            """
            INSERT INTO message_log (session_id, message_id, chat_jid, sender_jid, from_me, type, preview, sent_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (session_id, message_id) DO UPDATE
               SET chat_jid = EXCLUDED.chat_jid, sender_jid = coalesce(EXCLUDED.sender_jid, message_log.sender_jid),
                   from_me = EXCLUDED.from_me, type = EXCLUDED.type,
                   preview = coalesce(EXCLUDED.preview, message_log.preview),
                   sent_at = coalesce(EXCLUDED.sent_at, message_log.sent_at)
            """,
            (session_id, message_id, chat_jid, sender_jid, from_me, type, preview, _timestamp(sent_at)))

    def find(self, session_id: str, message_id: str) -> Optional[dict[str, Any]]:
        return self.find_many(session_id, [message_id]).get(message_id)

    def find_many(self, session_id: str, message_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The known ones among `message_ids`, by id (one query)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT message_id, chat_jid, sender_jid, from_me, type, preview FROM message_log "
                "WHERE session_id = %s AND message_id = ANY(%s)", (session_id, list(message_ids))).fetchall()
        return {row["message_id"]: row for row in rows}

    def prune(self, older_than_seconds: float, limit: int = 10_000) -> int:
        """Delete rows recorded longer ago than the retention, a bounded batch at a time."""
        with self.db.connection() as conn:
            cursor = conn.execute(
                """
                DELETE FROM message_log WHERE ctid IN (
                    SELECT ctid FROM message_log WHERE recorded_at < now() - make_interval(secs => %s) LIMIT %s)
                """, (older_than_seconds, limit))
            return cursor.rowcount
