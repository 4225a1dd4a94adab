"""`poll_secrets`: what reading a poll's votes needs (migration 0074).

A vote names options by hash and is encrypted with the poll's secret
(runner_container/poll_crypto.py), so the runner keeps, per session row and poll id,
the secret, the creator's JID and the option names of every poll it sends or receives.
The drivers write it (a poll received, a poll sent) and read it when a vote arrives.
"""
from __future__ import annotations

from typing import Any, Optional

from psycopg.types.json import Jsonb

from chalicelib.db import Database


class PollStore:
    def __init__(self, db: Database):
        self.db = db

    def remember(self, session_uid: str, poll: dict[str, Any]) -> None:
        """Keep a poll (`poll_record` shape); the same id again keeps the first secret."""
        with self.db.connection() as conn:
            conn.execute(
                """
                INSERT INTO poll_secrets (session_uid, poll_id, chat_jid, creator_jid, creator_alt, secret, name, options)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (session_uid, poll_id) DO NOTHING
                """,
                (session_uid, poll["poll_id"], poll["chat_jid"], poll["creator_jid"], poll.get("creator_alt"),
                 bytes(poll["secret"]), poll.get("name") or "", Jsonb(list(poll["options"]))))

    def find(self, session_uid: str, poll_id: str) -> Optional[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT poll_id, chat_jid, creator_jid, creator_alt, secret, name, options
                  FROM poll_secrets WHERE session_uid = %s AND poll_id = %s
                """, (session_uid, poll_id)).fetchone()
