"""The message store's writes (runner side) and the lookups replies and reactions need.

`apply(conn, session_uid, ops)` performs the operations of `chalicelib.messaging.store_records`
inside the caller's transaction: `SessionStore.apply` calls it with the event it records, so a
message and its event are written together or not at all. Everything is bound to the session
row id (`sessions.id`): a reused session_id never sees another row's messages.

Rules kept here, in SQL:
- a message seen again (a receipt before the message, a media worker after the actor) keeps
  what it knew and takes what the new sighting adds; history never overwrites a live row;
- a revoked message keeps its row, flagged, with its text, content, media and reactions blanked;
- a status only moves forward (sent < delivered < read < played);
- a chat's unread count is the received messages after our last read: one more for each new
  received message after it, recounted (through the chat index) when we read.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database
from chalicelib.messaging.store_records import STATUS_RANK, Op, preview_of

_RANK_SQL = "CASE {col} " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in STATUS_RANK.items()) + " ELSE 0 END"
_UNREAD = "(type NOT IN ('reaction', 'edit', 'revoke'))"


def _epoch(seconds: int) -> Any:
    from datetime import datetime, timezone  # noqa: PLC0415

    return datetime.fromtimestamp(min(seconds, 253402300799), tz=timezone.utc)  # -1 (forever) is stored as max


def _json(value: Any) -> Any:
    return Jsonb(value) if value is not None else None


class MessageStoreRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- writes (inside the runner's transaction) --------------------------------------------
    @classmethod
    def apply(cls, conn: psycopg.Connection, session_uid: str, ops: Iterable[Op]) -> dict[str, int]:
        """Perform the operations; counts of what was written, by operation."""
        counts: dict[str, int] = {}
        for name, values in ops:
            written = getattr(cls, f"_{name}")(conn, session_uid, values)
            counts[name] = counts.get(name, 0) + int(written or 0)
        return counts

    @staticmethod
    def _message(conn: psycopg.Connection, uid: str, row: dict[str, Any]) -> int:
        history = row.get("history", False)
        refresh = "DO NOTHING" if history else """DO UPDATE SET
                chat_jid = EXCLUDED.chat_jid, type = EXCLUDED.type,
                sender_jid = coalesce(EXCLUDED.sender_jid, messages.sender_jid),
                sender_phone = coalesce(EXCLUDED.sender_phone, messages.sender_phone),
                sender_lid = coalesce(EXCLUDED.sender_lid, messages.sender_lid),
                text = CASE WHEN messages.revoked_at IS NULL AND messages.edited_at IS NULL
                            THEN coalesce(EXCLUDED.text, messages.text) ELSE messages.text END,
                content = CASE WHEN messages.revoked_at IS NULL THEN coalesce(EXCLUDED.content, messages.content) END,
                media = CASE WHEN messages.revoked_at IS NULL THEN coalesce(EXCLUDED.media, messages.media) END,
                quoted_id = coalesce(EXCLUDED.quoted_id, messages.quoted_id),
                push_name = coalesce(EXCLUDED.push_name, messages.push_name)"""
        # the message and its chat in one statement (one round trip per message on the runner's hot path)
        return conn.execute(
            f"""
            WITH m AS (
                INSERT INTO messages (session_uid, message_id, chat_jid, sender_jid, sender_phone, sender_lid, from_me,
                                      type, text, content, media, quoted_id, push_name, sent_at, status)
                VALUES (%(uid)s, %(id)s, %(chat)s, %(sender)s, %(phone)s, %(lid)s, %(from_me)s, %(type)s, %(text)s,
                        %(content)s, %(media)s, %(quoted)s, %(push_name)s, coalesce(%(at)s, now()), %(status)s)
                ON CONFLICT (session_uid, message_id) {refresh}
                RETURNING (xmax = 0) AS inserted, sent_at)
            INSERT INTO chats (session_uid, chat_jid, is_group, last_message_id, last_message_at, activity_at,
                               unread_count)
            SELECT %(uid)s, %(chat)s, %(group)s, %(id)s, m.sent_at, m.sent_at,
                   CASE WHEN m.inserted AND %(unread)s THEN 1 ELSE 0 END FROM m
            ON CONFLICT (session_uid, chat_jid) DO UPDATE SET
                last_message_id = CASE WHEN chats.last_message_at IS NULL
                                         OR chats.last_message_at <= EXCLUDED.last_message_at
                                       THEN EXCLUDED.last_message_id ELSE chats.last_message_id END,
                last_message_at = greatest(chats.last_message_at, EXCLUDED.last_message_at),
                activity_at = CASE WHEN chats.last_message_at IS NULL THEN EXCLUDED.activity_at
                                   ELSE greatest(chats.activity_at, EXCLUDED.activity_at) END,
                unread_count = chats.unread_count + CASE WHEN EXCLUDED.unread_count = 1
                    AND EXCLUDED.last_message_at > coalesce(chats.last_read_at, '-infinity') THEN 1 ELSE 0 END,
                updated_at = now()
            """,
            {"uid": uid, "id": row["message_id"], "chat": row["chat_jid"], "sender": row["sender_jid"],
             "phone": row["sender_phone"], "lid": row["sender_lid"], "from_me": row["from_me"], "type": row["type"],
             "text": row["text"], "content": _json(row["content"]), "media": _json(row["media"]),
             "quoted": row["quoted_id"], "push_name": row["push_name"], "at": row["sent_at"], "status": row["status"],
             "group": row["is_group"], "unread": not row["from_me"] and not history}).rowcount

    @staticmethod
    def _edit(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        return conn.execute(
            "UPDATE messages SET text = coalesce(%s, text), edited_at = coalesce(%s, now()) "
            "WHERE session_uid = %s AND message_id = %s AND revoked_at IS NULL",
            (values.get("text"), values.get("edited_at"), uid, values.get("message_id"))).rowcount

    @staticmethod
    def _revoke(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        return conn.execute(
            "UPDATE messages SET text = NULL, content = NULL, media = NULL, reactions = NULL, "
            "revoked_at = coalesce(%s, now()), revoked_by = %s WHERE session_uid = %s AND message_id = %s",
            (values.get("revoked_at"), values.get("revoked_by"), uid, values.get("message_id"))).rowcount

    @staticmethod
    def _reaction(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        return conn.execute(
            """
            UPDATE messages SET reactions = CASE WHEN %(emoji)s = '' THEN nullif(coalesce(reactions, '{}') - %(author)s, '{}')
                                   ELSE coalesce(reactions, '{}') || jsonb_build_object(%(author)s::text, %(emoji)s::text) END
             WHERE session_uid = %(uid)s AND message_id = %(id)s AND revoked_at IS NULL
            """, {"emoji": values["emoji"], "author": values["author"], "uid": uid,
                  "id": values["message_id"]}).rowcount

    @staticmethod
    def _status(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        new = STATUS_RANK[values["status"]]
        return conn.execute(
            f"UPDATE messages SET status = %s, status_at = coalesce(%s, now()) "
            f"WHERE session_uid = %s AND message_id = ANY(%s) AND from_me AND {_RANK_SQL.format(col='status')} < %s",
            (values["status"], values.get("at"), uid, values["message_ids"], new)).rowcount

    @staticmethod
    def _chat_read(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        """We read the chat up to the newest of these messages (now, when none is stored)."""
        return conn.execute(
            f"""
            WITH mark AS (
                SELECT coalesce((SELECT max(sent_at) FROM messages WHERE session_uid = %(uid)s
                                    AND message_id = ANY(%(ids)s)), now()) AS at)
            UPDATE chats c SET last_read_at = greatest(c.last_read_at, mark.at), updated_at = now(),
                   unread_count = (SELECT count(*) FROM messages m WHERE m.session_uid = c.session_uid
                                      AND m.chat_jid = c.chat_jid AND NOT m.from_me AND {_UNREAD}
                                      AND m.sent_at > greatest(c.last_read_at, mark.at))
              FROM mark WHERE c.session_uid = %(uid)s AND c.chat_jid = %(chat)s
            """, {"uid": uid, "ids": values["message_ids"], "chat": values["chat_jid"]}).rowcount

    @staticmethod
    def _contact(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        return conn.execute(
            """
            INSERT INTO contacts (session_uid, jid, phone, lid, push_name, business_name, full_name, first_name)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (session_uid, jid) DO UPDATE SET
                phone = coalesce(EXCLUDED.phone, contacts.phone), lid = coalesce(EXCLUDED.lid, contacts.lid),
                push_name = coalesce(EXCLUDED.push_name, contacts.push_name),
                business_name = coalesce(EXCLUDED.business_name, contacts.business_name),
                full_name = coalesce(EXCLUDED.full_name, contacts.full_name),
                first_name = coalesce(EXCLUDED.first_name, contacts.first_name),
                updated_at = now()
            WHERE (EXCLUDED.phone, EXCLUDED.lid, EXCLUDED.push_name, EXCLUDED.business_name, EXCLUDED.full_name,
                   EXCLUDED.first_name) IS DISTINCT FROM
                  (coalesce(EXCLUDED.phone, contacts.phone), coalesce(EXCLUDED.lid, contacts.lid),
                   coalesce(EXCLUDED.push_name, contacts.push_name),
                   coalesce(EXCLUDED.business_name, contacts.business_name),
                   coalesce(EXCLUDED.full_name, contacts.full_name), coalesce(EXCLUDED.first_name, contacts.first_name))
               OR contacts.updated_at < now() - interval '1 day'
            """, (uid, values["jid"], values.get("phone"), values.get("lid"), values.get("push_name"),
                  values.get("business_name"), values.get("full_name"), values.get("first_name"))).rowcount

    @staticmethod
    def _chat(conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        """What WhatsApp tells about a chat (history sync, group changes): given values win."""
        return conn.execute(
            """
            INSERT INTO chats (session_uid, chat_jid, name, is_group, unread_count, archived, pinned, muted_until,
                               activity_at)
            VALUES (%(uid)s, %(chat)s, %(name)s, %(group)s, coalesce(%(unread)s, 0), %(archived)s, %(pinned)s,
                    %(muted)s, coalesce(%(activity)s, now()))
            ON CONFLICT (session_uid, chat_jid) DO UPDATE SET
                name = coalesce(EXCLUDED.name, chats.name),
                unread_count = coalesce(%(unread)s, chats.unread_count),
                archived = coalesce(EXCLUDED.archived, chats.archived),
                pinned = coalesce(EXCLUDED.pinned, chats.pinned),
                muted_until = coalesce(EXCLUDED.muted_until, chats.muted_until), updated_at = now()
            """, {"uid": uid, "chat": values["chat_jid"], "name": values.get("name"),
                  "group": values["chat_jid"].endswith("@g.us"), "unread": values.get("unread_count"),
                  "archived": values.get("archived"), "pinned": values.get("pinned"),
                  "muted": values.get("muted_until"), "activity": values.get("activity_at")}).rowcount

    @classmethod
    def _address_book(cls, conn: psycopg.Connection, uid: str, values: dict[str, Any]) -> int:
        """Copy whatsmeow's contact store and chat settings of the device into the store
        (on connect and after a history chunk, when whatsmeow has filled them). Best effort in a
        savepoint: whatever whatsmeow's schema does, the session's own write goes through."""
        from chalicelib.repositories.devices import DeviceStore  # noqa: PLC0415 - the one module naming whatsmeow_*

        try:
            with conn.transaction():
                contacts, settings = DeviceStore.address_book(conn, values["our_jid"])
                written = sum(cls._contact(conn, uid, row) for row in map(_address_book_contact, contacts) if row)
                for chat in settings:
                    muted = chat["muted_until"] or 0
                    cls._chat(conn, uid, {"chat_jid": chat["chat_jid"], "pinned": chat["pinned"],
                                          "archived": chat["archived"],
                                          "muted_until": _epoch(muted) if muted > 0 else None})
                return written
        except psycopg.Error:
            return 0

    # -- what replies, reactions and group reads need (runner) --------------------------------
    def find(self, session_uid: str | None, message_id: str) -> Optional[dict[str, Any]]:
        return self.find_many(session_uid, [message_id]).get(message_id)

    def find_many(self, session_uid: str | None, message_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The known ones among `message_ids`, by id (one query): chat, author, from_me, type, preview."""
        if session_uid is None:
            return {}
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT message_id, chat_jid, sender_jid, from_me, type, text, content FROM messages "
                "WHERE session_uid = %s AND message_id = ANY(%s)", (session_uid, list(message_ids))).fetchall()
        return {row["message_id"]: {"message_id": row["message_id"], "chat_jid": row["chat_jid"],
                                    "sender_jid": row["sender_jid"], "from_me": row["from_me"], "type": row["type"],
                                    "preview": preview_of({**(row["content"] or {}), "text": row["text"]})}
                for row in rows}


def _address_book_contact(contact: dict[str, Any]) -> dict[str, Any] | None:
    """A whatsmeow_contacts row as a store contact (a person: phone JID or LID), else None."""
    jid = contact["jid"] or ""
    if not (jid.endswith("@s.whatsapp.net") or jid.endswith("@lid")):
        return None
    return {**{k: contact[k] or None for k in ("first_name", "full_name", "push_name", "business_name")},
            "jid": jid, "phone": jid.split("@")[0] if jid.endswith("@s.whatsapp.net") else None,
            "lid": jid if jid.endswith("@lid") else None}
