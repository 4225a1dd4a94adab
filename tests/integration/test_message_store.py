"""The message store's write path on real PostgreSQL: what each event does to `messages`,
`chats` and `contacts` (in the event's transaction), the MESSAGE_STORE modes and retention,
proven by reading the tables."""
from __future__ import annotations

import uuid

import pytest

from chalicelib.repositories.message_store import MessageStoreRepository
from chalicelib.repositories.session_store import SessionStore, StateChange
from chalicelib.services.retention import RetentionService
from runner_container.machine import message_change

PEER = "5511912345678"
PEER_JID = f"{PEER}@s.whatsapp.net"
ME = "5511999990001"


def _who(phone):
    return {"jid": f"{phone}@s.whatsapp.net", "phone": phone}


def received(message_id, text="hello", *, at="2026-11-01T10:00:00Z", chat=None, sender=PEER, **extra):
    return {"message_id": message_id, "chat": chat or _who(sender), "from": _who(sender), "is_group": bool(chat),
            "from_me": False, "push_name": "Ana", "timestamp": at, "quoted_message_id": None, "type": "text",
            "text": text, **extra}


def sent(message_id, text="hi", *, at=1793527200, **extra):
    """What handlers.send_message writes: the API payload plus the id and timestamp."""
    return {"to": PEER_JID, "type": "text", "text": text, "message_id": message_id, "timestamp": at, **extra}


class Session:
    def __init__(self, container, make_session, mode="full"):
        created = make_session(session_id=f"st-{uuid.uuid4().hex[:10]}")
        self.created = created
        self.sid, self.uid = created["session_id"], created["id"]
        self.db = container.db
        self.store = SessionStore(container.db, container.events, mode)
        with self.db.connection() as conn:
            conn.execute("UPDATE sessions SET jid = %s WHERE id = %s", (f"{ME}:12@s.whatsapp.net", self.uid))

    def event(self, name, data):
        assert self.store.apply(self.sid, message_change(name, data), uid=self.uid) is not None

    def change(self, change):
        assert self.store.apply(self.sid, change, uid=self.uid) is not None

    def message(self, message_id):
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM messages WHERE session_uid = %s AND message_id = %s",
                                (self.uid, message_id)).fetchone()

    def chat(self, jid=PEER_JID):
        with self.db.connection() as conn:
            return conn.execute("SELECT * FROM chats WHERE session_uid = %s AND chat_jid = %s",
                                (self.uid, jid)).fetchone()

    def count(self, table):
        with self.db.connection() as conn:
            return conn.execute(f"SELECT count(*) AS n FROM {table} WHERE session_uid = %s", (self.uid,)).fetchone()["n"]


@pytest.fixture
def session(container, make_session):
    return Session(container, make_session)


def test_a_received_message_is_stored_with_its_chat_and_author_in_the_events_transaction(session, db):
    session.event("message.received", received("3EB0R1", "hello there", quoted_message_id="3EB0Q"))
    row = session.message("3EB0R1")
    assert (row["chat_jid"], row["sender_jid"], row["sender_phone"], row["from_me"], row["type"], row["text"],
            row["quoted_id"], row["status"], row["push_name"]) == (PEER_JID, PEER_JID, PEER, False, "text",
                                                                   "hello there", "3EB0Q", "received", "Ana")
    assert row["sent_at"].isoformat() == "2026-11-01T10:00:00+00:00"
    chat = session.chat()
    assert (chat["is_group"], chat["last_message_id"], chat["unread_count"]) == (False, "3EB0R1", 1)
    with db.connection() as conn:
        contact = conn.execute("SELECT * FROM contacts WHERE session_uid = %s", (session.uid,)).fetchone()
        event = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_uid = %s AND "
                             "envelope->>'event' = 'message.received'", (session.uid,)).fetchone()
    assert (contact["jid"], contact["phone"], contact["push_name"]) == (PEER_JID, PEER, "Ana")
    assert event["n"] == 1


def test_the_store_write_and_the_event_commit_together_or_not_at_all(session, db):
    """A store write that fails rolls the event back: the outbox never says what the store lacks."""
    bad = received("3EB0BAD")
    bad["timestamp"] = "2026-11-01T10:00:00Z"
    with db.connection() as conn:
        conn.execute("ALTER TABLE messages ADD CONSTRAINT t_no_bad CHECK (message_id <> '3EB0BAD') NOT VALID")
    try:
        with pytest.raises(Exception):
            session.event("message.received", bad)
    finally:
        with db.connection() as conn:
            conn.execute("ALTER TABLE messages DROP CONSTRAINT t_no_bad")
    with db.connection() as conn:
        events = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_uid = %s AND "
                              "envelope->'data'->>'message_id' = '3EB0BAD'", (session.uid,)).fetchone()
    assert events["n"] == 0 and session.message("3EB0BAD") is None


def test_a_sent_message_moves_forward_with_receipts_and_never_back(session):
    session.event("message.sent", sent("3EB0S1", "the invoice", media_size=10))
    row = session.message("3EB0S1")
    assert (row["from_me"], row["sender_jid"], row["status"], row["chat_jid"]) == (True, f"{ME}@s.whatsapp.net",
                                                                                  "sent", PEER_JID)
    receipt = {"message_ids": ["3EB0S1"], "chat": _who(PEER), "sender": _who(PEER), "is_group": False,
               "timestamp": "2026-11-01T10:05:00Z"}
    session.event("message.receipt", {**receipt, "type": "read"})
    session.event("message.receipt", {**receipt, "type": "delivered"})  # late: a status never goes back
    row = session.message("3EB0S1")
    assert row["status"] == "read" and row["status_at"].isoformat() == "2026-11-01T10:05:00+00:00"
    session.event("message.receipt", {**receipt, "type": "played"})
    assert session.message("3EB0S1")["status"] == "played"
    assert session.chat()["unread_count"] == 0  # our own messages are never unread


def test_edits_and_revokes_change_the_stored_row_which_keeps_its_place(session):
    session.event("message.received", received("3EB0E1", "see you at 5"))
    session.event("message.edited", {"message_id": "3EB0E1", "chat": _who(PEER), "sender": _who(PEER),
                                     "text": "see you at 6", "edited_at": "2026-11-01T10:02:00Z"})
    row = session.message("3EB0E1")
    assert row["text"] == "see you at 6" and row["edited_at"].isoformat() == "2026-11-01T10:02:00+00:00"

    session.event("message.received", received("3EB0E2", "oops", media={"media_key": "k", "sha256": "ab"}))
    session.event("message.revoked", {"message_id": "3EB0E2", "chat": _who(PEER), "sender": _who(PEER),
                                      "revoked_by": _who(PEER), "by_admin": False,
                                      "revoked_at": "2026-11-01T10:03:00Z"})
    row = session.message("3EB0E2")
    assert row is not None and row["revoked_at"] is not None and row["revoked_by"] == PEER_JID
    assert (row["text"], row["media"], row["content"]) == (None, None, None)
    # a late duplicate of the revoked message does not bring its content back
    session.event("message.received", received("3EB0E2", "oops"))
    assert session.message("3EB0E2")["text"] is None

    # our own edit and revoke (sent through the API) apply to the message they name
    session.event("message.sent", sent("3EB0MINE", "draft"))
    session.event("message.sent", {**sent("3EB0EDIT", "final"), "type": "edit", "target_message_id": "3EB0MINE"})
    assert session.message("3EB0MINE")["text"] == "final" and session.message("3EB0EDIT") is None
    session.event("message.sent", {**sent("3EB0REV", None), "type": "revoke", "target_message_id": "3EB0MINE"})
    mine = session.message("3EB0MINE")
    assert mine["text"] is None and mine["revoked_by"] == f"{ME}@s.whatsapp.net"


def test_reactions_are_kept_on_the_message_and_an_empty_emoji_removes_one(session):
    session.event("message.sent", sent("3EB0T"))
    reaction = received("3EB0T", type="reaction", emoji="👍")  # whatsmeow names the reacted message
    reaction.pop("text")
    session.event("message.received", reaction)
    assert session.message("3EB0T")["reactions"] == {PEER_JID: "👍"}
    assert session.message("3EB0T")["type"] == "text"  # the reaction did not overwrite the message
    session.event("message.received", {**reaction, "emoji": ""})
    assert session.message("3EB0T")["reactions"] is None


def test_unread_counts_what_arrived_after_our_last_read(session):
    for n in range(3):
        session.event("message.received", received(f"3EB0U{n}", at=f"2026-11-01T10:0{n}:00Z"))
    assert session.chat()["unread_count"] == 3
    session.change(StateChange(store=(("chat_read", {"chat_jid": PEER_JID, "message_ids": ["3EB0U1"]}),)))
    chat = session.chat()
    assert chat["unread_count"] == 1 and chat["last_read_at"].isoformat() == "2026-11-01T10:01:00+00:00"
    session.event("message.received", received("3EB0U3", at="2026-11-01T10:05:00Z"))
    assert session.chat()["unread_count"] == 2
    # our other device read everything (a read_self receipt)
    session.event("message.receipt", {"message_ids": ["3EB0U3"], "type": "read_self", "chat": _who(PEER),
                                      "sender": _who(ME), "is_group": False, "timestamp": None})
    assert session.chat()["unread_count"] == 0


def test_a_group_message_names_its_author_and_the_group_subject_names_the_chat(session):
    group = {"jid": "120363012345678901@g.us", "phone": None}
    session.event("message.received", received("3EB0G1", chat=group, sender="5511900000001"))
    session.event("group.update", {"group": group, "changes": {"subject": "Team"}})
    row = session.message("3EB0G1")
    assert row["chat_jid"] == group["jid"] and row["sender_jid"] == "5511900000001@s.whatsapp.net"
    chat = session.chat(group["jid"])
    assert chat["is_group"] is True and chat["name"] == "Team"


def test_replies_find_what_they_need_in_the_store(session, container):
    session.event("message.received", received("3EB0Q1", "x" * 500))
    found = MessageStoreRepository(container.db).find_many(session.uid, ["3EB0Q1", "3EB0NONE"])
    assert set(found) == {"3EB0Q1"}
    assert found["3EB0Q1"]["sender_jid"] == PEER_JID and found["3EB0Q1"]["from_me"] is False
    assert found["3EB0Q1"]["preview"] == "x" * 200  # a quote's preview is short


def test_metadata_mode_keeps_no_text_captions_or_media_refs(container, make_session):
    session = Session(container, make_session, mode="metadata")
    session.event("message.received", received("3EB0M1", "a secret", type="image", caption="a secret",
                                                media={"media_key": "sessions/x/y", "sha256": "ab", "size": 3}))
    session.event("message.received", received("3EB0M2", "also secret"))
    session.event("message.edited", {"message_id": "3EB0M2", "chat": _who(PEER), "text": "edited secret",
                                     "edited_at": "2026-11-01T10:09:00Z"})
    with container.db.connection() as conn:
        rows = conn.execute("SELECT message_id, type, text, content, media, reactions, edited_at FROM messages "
                            "WHERE session_uid = %s ORDER BY message_id", (session.uid,)).fetchall()
    assert [(r["message_id"], r["type"], r["text"], r["content"], r["media"]) for r in rows] == [
        ("3EB0M1", "image", None, None, None), ("3EB0M2", "text", None, None, None)]
    assert rows[1]["edited_at"] is not None  # that it was edited is metadata; what it says is not
    assert session.count("chats") == 1


def test_off_mode_writes_nothing_but_the_event(container, make_session, db):
    session = Session(container, make_session, mode="off")
    session.event("message.received", received("3EB0O1", "nothing stored"))
    session.event("message.sent", sent("3EB0O2"))
    assert (session.count("messages"), session.count("chats"), session.count("contacts")) == (0, 0, 0)
    with db.connection() as conn:
        events = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_uid = %s AND "
                              "envelope->>'event' LIKE 'message.%%'", (session.uid,)).fetchone()
    assert events["n"] == 2


def test_a_reused_session_id_starts_with_an_empty_store(container, make_session, api, admin_headers):
    old = Session(container, make_session)
    old.event("message.received", received("3EB0OLD", "for the old session"))
    assert api.delete(f"/sessions/{old.sid}", headers=admin_headers).status_code in (200, 202, 204)
    with container.db.connection() as conn:  # the rows went with their session row
        left = conn.execute("SELECT count(*) AS n FROM messages WHERE session_uid = %s", (old.uid,)).fetchone()
    assert left["n"] == 0
    new = make_session(session_id=old.sid)
    assert MessageStoreRepository(container.db).find(new["id"], "3EB0OLD") is None
    # a stale writer bound to the old row writes nothing into the new one
    assert old.store.apply(old.sid, message_change("message.received", received("3EB0LATE")), uid=old.uid) is None
    with container.db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM messages WHERE session_uid = %s",
                            (new["id"],)).fetchone()["n"] == 0


def test_retention_prunes_old_messages_chats_and_contacts_in_batches(container, session):
    for n in range(5):
        session.event("message.received", received(f"3EB0OLD{n}", at="2026-01-01T00:00:00Z", sender="5511900000009"))
    session.event("message.received", received("3EB0FRESH", at="2026-11-29T00:00:00Z"))
    with container.db.connection() as conn:  # stored long ago
        conn.execute("UPDATE contacts SET updated_at = now() - interval '200 days' "
                     "WHERE session_uid = %s AND phone = '5511900000009'", (session.uid,))
        conn.execute("UPDATE messages SET recorded_at = now() - interval '200 days' "
                     "WHERE session_uid = %s AND message_id LIKE '3EB0OLD%%'", (session.uid,))
        conn.execute("UPDATE chats SET updated_at = now() - interval '200 days' "
                     "WHERE session_uid = %s AND chat_jid = '5511900000009@s.whatsapp.net'", (session.uid,))
    retention = {"messages": 90 * 86400.0, "chats": 90 * 86400.0, "contacts": 90 * 86400.0}
    report = RetentionService(container.db, retention, batch_size=2).run()
    assert report.deleted["messages"] >= 5 and report.batches >= 3  # bounded batches of 2
    assert session.message("3EB0OLD0") is None and session.message("3EB0FRESH") is not None
    assert session.chat("5511900000009@s.whatsapp.net") is None and session.chat() is not None
    with container.db.connection() as conn:
        phones = [r["phone"] for r in conn.execute("SELECT phone FROM contacts WHERE session_uid = %s",
                                                   (session.uid,)).fetchall()]
    assert phones == [PEER]


def test_whatsmeows_contact_store_and_chat_settings_are_copied_on_connect(container, make_session, stack, db):
    """whatsmeow fills its own tables from app state sync (names, archived/pinned/muted): the
    store copies them when the session connects, from neonize's real schema."""
    from tests.integration.drivers.kits import NeonizeKit

    session = Session(container, make_session)
    kit = NeonizeKit(stack.env["DATABASE_URL"], db)
    try:
        our_jid = kit.store_device(session.sid)
    finally:
        kit.close()
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET jid = %s WHERE id = %s", (our_jid, session.uid))
        conn.execute("INSERT INTO whatsmeow_contacts (our_jid, their_jid, first_name, full_name, push_name, "
                     "business_name) VALUES (%s, %s, 'Ana', 'Ana Paula Souza', 'Aninha', ''), "
                     "(%s, '5511900000002@s.whatsapp.net', '', '', 'Bakery', 'Ana''s Bakery')",
                     (our_jid, PEER_JID, our_jid))
        conn.execute("INSERT INTO whatsmeow_chat_settings (our_jid, chat_jid, muted_until, pinned, archived) "
                     "VALUES (%s, %s, 1893456000, true, true)", (our_jid, PEER_JID))
    session.change(StateChange(status="authenticated", event="session.connected", data={"jid": our_jid}))
    with db.connection() as conn:
        contacts = {r["jid"]: r for r in conn.execute("SELECT * FROM contacts WHERE session_uid = %s",
                                                       (session.uid,)).fetchall()}
    assert (contacts[PEER_JID]["full_name"], contacts[PEER_JID]["first_name"], contacts[PEER_JID]["push_name"],
            contacts[PEER_JID]["phone"]) == ("Ana Paula Souza", "Ana", "Aninha", PEER)
    assert contacts["5511900000002@s.whatsapp.net"]["business_name"] == "Ana's Bakery"
    chat = session.chat()
    assert (chat["pinned"], chat["archived"], chat["muted_until"].year) == (True, True, 2030)
