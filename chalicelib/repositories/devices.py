"""The WhatsApp device stores: where a paired session's keys live.

neonize (whatsmeow) keeps a device in its own `whatsmeow_*` tables (created by neonize
on first use; the others cascade from `whatsmeow_device`); the emulator keeps one row
per session in `emulator_devices`. Only this module names those tables: the runner's
drivers check and forget devices through it, and the API's session delete drops a
deleted session's device through `DeviceStore.delete` in its own transaction.
"""
from __future__ import annotations

from typing import Any

import psycopg

from chalicelib.db import Database


class DeviceStore:
    """whatsmeow's device rows."""

    def __init__(self, db: Database):
        self.db = db

    def has(self, jid: str) -> bool:
        with self.db.connection() as conn:
            if not _whatsmeow_present(conn):
                return False
            return conn.execute("SELECT 1 FROM whatsmeow_device WHERE jid = %s", (jid,)).fetchone() is not None

    def forget(self, jid: str) -> None:
        with self.db.connection() as conn:
            self.delete(conn, jid)

    @staticmethod
    def address_book(conn: psycopg.Connection, our_jid: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """whatsmeow's own contact store and chat settings of a device (app state sync: names,
        archived / pinned / muted): ([{jid, first_name, full_name, push_name, business_name}],
        [{chat_jid, muted_until (epoch s), pinned, archived}]); empty without neonize's tables."""
        if not _whatsmeow_present(conn):
            return [], []
        contacts = conn.execute(
            "SELECT their_jid AS jid, first_name, full_name, push_name, business_name FROM whatsmeow_contacts "
            "WHERE our_jid = %s", (our_jid,)).fetchall()
        settings = conn.execute(
            "SELECT chat_jid, muted_until, pinned, archived FROM whatsmeow_chat_settings WHERE our_jid = %s",
            (our_jid,)).fetchall()
        return contacts, settings

    @staticmethod
    def delete(conn: psycopg.Connection, jid: str) -> None:
        """Drop the device inside the caller's transaction, if neonize created its tables."""
        if _whatsmeow_present(conn):
            conn.execute("DELETE FROM whatsmeow_device WHERE jid = %s", (jid,))


class EmulatorDeviceStore:
    """The emulator's stand-in device store (`emulator_devices`)."""

    def __init__(self, db: Database):
        self.db = db

    def load(self, session_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute("SELECT jid, push_name FROM emulator_devices WHERE session_id = %s",
                                (session_id,)).fetchone()

    def store(self, session_id: str, jid: str, push_name: str | None) -> None:
        with self.db.connection() as conn:
            conn.execute(
                """
                INSERT INTO emulator_devices (session_id, jid, push_name)
                SELECT %s, %s, %s WHERE EXISTS (SELECT 1 FROM sessions WHERE session_id = %s)
                ON CONFLICT (session_id) DO UPDATE SET jid = EXCLUDED.jid, push_name = EXCLUDED.push_name,
                    paired_at = now()
                """, (session_id, jid, push_name, session_id))

    def forget(self, session_id: str) -> None:
        with self.db.connection() as conn:
            conn.execute("DELETE FROM emulator_devices WHERE session_id = %s", (session_id,))


def _whatsmeow_present(conn: psycopg.Connection) -> bool:
    exists = conn.execute("SELECT to_regclass('whatsmeow_device') IS NOT NULL AS ok").fetchone()
    return bool(exists and exists["ok"])
