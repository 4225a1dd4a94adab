"""The message store's reads (the API side): chats, a chat's messages, a message, contacts.

Every query is bound to the session row id and pages by keyset (the last row's sort key, in
an opaque cursor the service builds), never by OFFSET, so a deep page costs what the first
one costs. The chat page walks `idx_messages_chat_time` (session_uid, chat_jid, sent_at DESC,
message_id DESC) and stops after `limit + 1` rows: no sort, no scan of the chat
(tests/integration/test_store_api.py reads the EXPLAIN).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from chalicelib.db import Database

MESSAGE_COLUMNS = ("m.message_id, m.chat_jid, m.sender_jid, m.sender_phone, m.sender_lid, m.from_me, m.type, m.text, "
                   "m.content, m.media, m.reactions, m.quoted_id, m.push_name, m.sent_at, m.recorded_at, m.status, "
                   "m.status_at, m.edited_at, m.revoked_at, m.revoked_by")
CONTACT_COLUMNS = ("jid, phone, lid, push_name, business_name, full_name, first_name, on_whatsapp, about, "
                   "picture_url, profile_at, updated_at")


class StoreReadRepository:
    def __init__(self, db: Database):
        self.db = db

    def chats(self, uid: str, *, limit: int, after: Optional[tuple[datetime, str]] = None,
              is_group: Optional[bool] = None, unread: Optional[bool] = None) -> list[dict[str, Any]]:
        where, params = ["c.session_uid = %(uid)s"], {"uid": uid, "limit": limit}
        if is_group is not None:
            where.append("c.is_group = %(group)s")
            params["group"] = is_group
        if unread is not None:
            where.append("c.unread_count > 0" if unread else "c.unread_count = 0")
        if after is not None:
            where.append("(c.activity_at, c.chat_jid) < (%(at)s, %(jid)s)")
            params.update(at=after[0], jid=after[1])
        with self.db.connection() as conn:
            return conn.execute(
                f"""
                SELECT c.chat_jid, c.is_group, c.unread_count, c.last_read_at, c.archived, c.pinned, c.muted_until,
                       c.activity_at, c.last_message_at,
                       coalesce(c.name, ct.full_name, ct.push_name, ct.business_name) AS name,
                       m.message_id AS last_id, m.type AS last_type, m.from_me AS last_from_me, m.text AS last_text,
                       m.sent_at AS last_at, m.revoked_at AS last_revoked_at
                  FROM chats c
                  LEFT JOIN contacts ct ON ct.session_uid = c.session_uid AND ct.jid = c.chat_jid
                  LEFT JOIN messages m ON m.session_uid = c.session_uid AND m.message_id = c.last_message_id
                 WHERE {' AND '.join(where)}
                 ORDER BY c.activity_at DESC, c.chat_jid DESC
                 LIMIT %(limit)s
                """, params).fetchall()

    def chat_exists(self, uid: str, chat_jid: str) -> bool:
        with self.db.connection() as conn:
            return conn.execute("SELECT 1 FROM chats WHERE session_uid = %s AND chat_jid = %s",
                                (uid, chat_jid)).fetchone() is not None

    @staticmethod
    def messages_query(*, type: Optional[str], before: Optional[datetime], since: Optional[datetime],
                       after: Optional[tuple[datetime, str]]) -> str:
        where = ["m.session_uid = %(uid)s", "m.chat_jid = %(chat)s"]
        if type is not None:
            where.append("m.type = %(type)s")
        if before is not None:
            where.append("m.sent_at < %(before)s")
        if since is not None:
            where.append("m.sent_at > %(since)s")
        if after is not None:
            where.append("(m.sent_at, m.message_id) < (%(at)s, %(id)s)")
        return (f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE {' AND '.join(where)} "
                "ORDER BY m.sent_at DESC, m.message_id DESC LIMIT %(limit)s")

    def messages(self, uid: str, chat_jid: str, *, limit: int, type: Optional[str] = None,
                 before: Optional[datetime] = None, since: Optional[datetime] = None,
                 after: Optional[tuple[datetime, str]] = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"uid": uid, "chat": chat_jid, "limit": limit, "type": type, "before": before,
                                  "since": since}
        if after is not None:
            params.update(at=after[0], id=after[1])
        with self.db.connection() as conn:
            # planned with the values each time (prepare=False): a cached generic plan does not know
            # how much of the table one chat or one cursor position is
            return conn.execute(self.messages_query(type=type, before=before, since=since, after=after),
                                params, prepare=False).fetchall()

    def message(self, uid: str, message_id: str) -> Optional[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.session_uid = %s "
                                "AND m.message_id = %s", (uid, message_id)).fetchone()

    def contacts(self, uid: str, *, limit: int, after: Optional[str] = None,
                 search: Optional[str] = None) -> list[dict[str, Any]]:
        where, params = ["session_uid = %(uid)s"], {"uid": uid, "limit": limit}
        if search:
            digits = "".join(ch for ch in search if ch.isdigit())
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses = ["push_name ILIKE %(like)s", "full_name ILIKE %(like)s", "business_name ILIKE %(like)s"]
            if digits:
                clauses.append("phone LIKE %(digits)s")
                params["digits"] = f"%{digits}%"
            where.append(f"({' OR '.join(clauses)})")
            params["like"] = like
        if after is not None:
            where.append("jid > %(after)s")
            params["after"] = after
        with self.db.connection() as conn:
            return conn.execute(f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE {' AND '.join(where)} "
                                "ORDER BY jid LIMIT %(limit)s", params).fetchall()

    def contact(self, uid: str, jid: str) -> Optional[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute(f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE session_uid = %s AND jid = %s",
                                (uid, jid)).fetchone()

    def save_profile(self, uid: str, jid: str, phone: Optional[str], profile: dict[str, Any]) -> None:
        """The runner's answer about a contact, cached (`profile_at`)."""
        with self.db.connection() as conn:
            conn.execute(
                """
                INSERT INTO contacts (session_uid, jid, phone, on_whatsapp, about, picture_url, business_name,
                                      push_name, profile_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())
                ON CONFLICT (session_uid, jid) DO UPDATE SET
                    on_whatsapp = EXCLUDED.on_whatsapp, about = EXCLUDED.about, picture_url = EXCLUDED.picture_url,
                    business_name = coalesce(EXCLUDED.business_name, contacts.business_name),
                    push_name = coalesce(EXCLUDED.push_name, contacts.push_name),
                    profile_at = now(), updated_at = now()
                """, (uid, jid, phone, profile.get("on_whatsapp"), profile.get("about"), profile.get("picture_url"),
                      profile.get("business_name"), profile.get("push_name")))
