"""The message store's read API: pages and cursors, filters, 404s, 422s naming the parameter,
tenant isolation (another session's key, a reused session id), and the EXPLAIN of a chat's
first and deep pages over 100,000 messages (index only: no Seq Scan, no Sort)."""
from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest

from chalicelib.repositories.store_reads import StoreReadRepository
from tests.conftest import session_headers
from tests.integration.test_message_store import PEER, PEER_JID, Session, received, sent

GROUP = {"jid": "120363012345678901@g.us", "phone": None}


@pytest.fixture
def seeded(container, make_session):
    """Three chats: PEER (5 messages, 2 unread after a read), a group (1), another contact (1, read)."""
    session = Session(container, make_session)
    for n in range(5):
        session.event("message.received", received(f"3EB0P{n}", f"message {n}", at=f"2026-11-01T10:0{n}:00Z"))
    session.event("message.sent", sent("3EB0PS", "my answer", at="2026-11-01T10:06:00Z"))
    from chalicelib.repositories.session_store import StateChange

    session.change(StateChange(store=(("chat_read", {"chat_jid": PEER_JID, "message_ids": ["3EB0P2"]}),)))
    session.event("message.received", received("3EB0G", "in the group", chat=GROUP, sender="5511900000001",
                                                at="2026-11-01T09:00:00Z"))
    session.event("message.received", received("3EB0O", "other", sender="5511977770000", at="2026-11-01T08:00:00Z",
                                                push_name="Bruno"))
    session.change(StateChange(store=(("chat_read", {"chat_jid": "5511977770000@s.whatsapp.net",
                                                     "message_ids": ["3EB0O"]}),)))
    session.event("message.received", received("3EB0IMG", None, type="image", caption="a photo",
                                                at="2026-10-01T08:00:00Z",
                                                media={"media_key": "sessions/x/1", "mime_type": "image/jpeg",
                                                       "size": 3, "sha256": "abc"}))
    return session


def _get(api, session, path, headers=None):
    return api.get(f"/sessions/{session.sid}{path}", headers=headers or session_headers(session.created))


def test_chats_come_newest_activity_first_with_filters_and_a_cursor(api, seeded):
    answer = _get(api, seeded, "/chats")
    assert answer.status_code == 200, answer.body
    chats = answer.json_body["chats"]
    assert [c["jid"] for c in chats] == [PEER_JID, GROUP["jid"], "5511977770000@s.whatsapp.net"]
    assert answer.json_body["cursor"] is None
    first = chats[0]
    assert first["unread_count"] == 2 and first["name"] == "Ana" and first["is_group"] is False
    assert first["last_message"]["message_id"] == "3EB0PS" and first["last_message"]["from_me"] is True

    groups = _get(api, seeded, "/chats?is_group=true").json_body["chats"]
    assert [c["jid"] for c in groups] == [GROUP["jid"]]
    unread = _get(api, seeded, "/chats?unread=true").json_body["chats"]
    assert [c["jid"] for c in unread] == [PEER_JID, GROUP["jid"]]

    seen, cursor = [], ""
    for _ in range(5):
        page = _get(api, seeded, f"/chats?limit=1{cursor}").json_body
        seen += [c["jid"] for c in page["chats"]]
        if page["cursor"] is None:
            break
        cursor = f"&cursor={page['cursor']}"
    assert seen == [c["jid"] for c in chats]


def test_a_chats_messages_page_newest_first_by_phone_or_encoded_jid(api, seeded):
    by_phone = _get(api, seeded, f"/chats/{PEER}/messages")
    assert by_phone.status_code == 200, by_phone.body
    ids = [m["message_id"] for m in by_phone.json_body["messages"]]
    assert ids == ["3EB0PS", "3EB0P4", "3EB0P3", "3EB0P2", "3EB0P1", "3EB0P0", "3EB0IMG"]
    by_jid = _get(api, seeded, f"/chats/{quote(PEER_JID, safe='')}/messages")
    assert [m["message_id"] for m in by_jid.json_body["messages"]] == ids
    group = _get(api, seeded, f"/chats/{quote(GROUP['jid'], safe='')}/messages").json_body["messages"]
    assert group[0]["sender"] == {"jid": "5511900000001@s.whatsapp.net", "phone": "5511900000001", "lid": None}

    image = [m for m in by_phone.json_body["messages"] if m["type"] == "image"][0]
    assert image["text"] == "a photo" and image["media"]["media_key"] == "sessions/x/1"
    assert image["media"]["sha256"] == "abc" and image["media"]["mime_type"] == "image/jpeg"

    pages, cursor = [], ""
    while True:
        page = _get(api, seeded, f"/chats/{PEER}/messages?limit=3{cursor}").json_body
        pages.append([m["message_id"] for m in page["messages"]])
        if page["cursor"] is None:
            break
        cursor = f"&cursor={page['cursor']}"
    assert [i for p in pages for i in p] == ids and [len(p) for p in pages] == [3, 3, 1]

    window = _get(api, seeded, f"/chats/{PEER}/messages?after=2026-11-01T10:01:00Z&before=2026-11-01T10:04:00Z")
    assert [m["message_id"] for m in window.json_body["messages"]] == ["3EB0P3", "3EB0P2"]
    images = _get(api, seeded, f"/chats/{PEER}/messages?type=image").json_body["messages"]
    assert [m["message_id"] for m in images] == ["3EB0IMG"]


def test_one_message_by_id_and_unknown_ids_chats_and_contacts_are_404(api, seeded):
    answer = _get(api, seeded, "/messages/3EB0PS")
    assert answer.status_code == 200
    assert answer.json_body["from_me"] is True and answer.json_body["status"] == "sent"
    for path, code in (("/messages/3EB0NOPE", "message_not_found"), ("/chats/5511911112222/messages", "chat_not_found"),
                       ("/contacts/5511911112222", "contact_not_found")):
        missing = _get(api, seeded, path)
        assert missing.status_code == 404 and missing.json_body["code"] == code, (path, missing.body)


@pytest.mark.parametrize("path,field", [
    ("/chats?limit=0", "limit"), ("/chats?limit=201", "limit"), ("/chats?is_group=maybe", "is_group"),
    ("/chats?cursor=not-a-cursor", "cursor"),
    ("/chats/not-a-phone/messages", "chat"), ("/chats/12@example.com/messages", "chat"),
    (f"/chats/{PEER}/messages?before=yesterday", "before"), (f"/chats/{PEER}/messages?type=gif", "type"),
    (f"/chats/{PEER}/messages?cursor=" + "A" * 40, "cursor"),
    ("/contacts?limit=-1", "limit"), ("/contacts/abc", "phone"), ("/contacts/120363012345678901@g.us", "phone"),
])
def test_bad_parameters_are_422_naming_them(api, seeded, path, field):
    answer = _get(api, seeded, path)
    assert answer.status_code == 422, (path, answer.body)
    assert answer.json_body["code"] == "validation_failed"
    assert field in json.dumps(answer.json_body.get("details") or answer.json_body["message"]), answer.body


def test_a_cursor_only_pages_the_listing_and_session_it_came_from(api, seeded):
    chats_cursor = _get(api, seeded, "/chats?limit=1").json_body["cursor"]
    other_listing = _get(api, seeded, f"/chats/{PEER}/messages?cursor={chats_cursor}")
    assert other_listing.status_code == 422 and "cursor" in other_listing.body.decode()


def test_contacts_search_by_name_or_phone_and_a_stored_contact_without_the_runner(api, seeded):
    everyone = _get(api, seeded, "/contacts").json_body["contacts"]
    assert {c["phone"] for c in everyone} == {PEER, "5511900000001", "5511977770000"}
    assert [c["phone"] for c in _get(api, seeded, "/contacts?search=brun").json_body["contacts"]] == ["5511977770000"]
    assert [c["phone"] for c in _get(api, seeded, "/contacts?search=97777").json_body["contacts"]] == ["5511977770000"]
    assert _get(api, seeded, "/contacts?search=%25").json_body["contacts"] == []  # a LIKE wildcard is a character
    page = _get(api, seeded, "/contacts?limit=2").json_body
    rest = _get(api, seeded, f"/contacts?limit=2&cursor={page['cursor']}").json_body
    assert len(page["contacts"]) == 2 and len(rest["contacts"]) == 1 and rest["cursor"] is None
    # not connected: the stored contact, no runner involved
    ana = _get(api, seeded, f"/contacts/+{PEER}")
    assert ana.status_code == 200, ana.body
    assert ana.json_body["push_name"] == "Ana" and ana.json_body["profile_at"] is None


def test_another_sessions_key_is_403_on_every_store_route(api, seeded, make_session):
    other = session_headers(make_session())
    for path in ("/chats", f"/chats/{PEER}/messages", "/messages/3EB0PS", "/contacts", f"/contacts/{PEER}"):
        answer = _get(api, seeded, path, headers=other)
        assert answer.status_code == 403, (path, answer.body)
    assert api.get(f"/sessions/{seeded.sid}/chats").status_code == 401


def test_the_admin_key_reads_and_a_reused_session_id_sees_nothing_of_the_old_one(api, seeded, admin_headers,
                                                                                  make_session):
    assert len(_get(api, seeded, "/chats", headers=admin_headers).json_body["chats"]) == 3
    assert api.delete(f"/sessions/{seeded.sid}", headers=admin_headers).status_code in (200, 202, 204)
    reborn = make_session(session_id=seeded.sid)
    headers = session_headers(reborn)
    assert api.get(f"/sessions/{seeded.sid}/chats", headers=headers).json_body == {"chats": [], "cursor": None}
    assert api.get(f"/sessions/{seeded.sid}/messages/3EB0PS", headers=headers).status_code == 404
    assert api.get(f"/sessions/{seeded.sid}/chats/{PEER}/messages", headers=headers).status_code == 404
    assert api.get(f"/sessions/{seeded.sid}/contacts", headers=headers).json_body["contacts"] == []


def test_the_contacts_check_route_still_answers(api, seeded):
    answer = api.post(f"/sessions/{seeded.sid}/contacts/check", headers=session_headers(seeded.created),
                      body=json.dumps({"phones": [PEER]}))
    assert answer.status_code == 409 and answer.json_body["code"] == "not_connected"  # as before: not paired


def _plan(conn, sql, params):
    rows = conn.execute("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql, params).fetchall()
    return "\n".join(row["QUERY PLAN"] for row in rows)


def test_a_chat_of_100000_messages_pages_through_the_index(container, make_session):
    """The first page and a deep page (keyset cursor) read `idx_messages_chat_time` only: no
    Seq Scan of messages, no Sort, limit + 1 rows read (bench/message_store.py times them)."""
    session = Session(container, make_session)
    with container.db.connection() as conn:
        conn.execute(
            """
            INSERT INTO messages (session_uid, message_id, chat_jid, sender_jid, from_me, type, text, sent_at, status)
            SELECT %s, 'BIG' || lpad(n::text, 6, '0'), CASE WHEN n %% 10 = 0 THEN 'other@s.whatsapp.net' ELSE %s END,
                   %s, n %% 2 = 0, CASE WHEN n %% 7 = 0 THEN 'image' ELSE 'text' END, 'message ' || n,
                   timestamptz '2026-01-01' + make_interval(secs => n), 'received'
              FROM generate_series(1, 111111) AS n
            """, (session.uid, PEER_JID, PEER_JID))
        conn.execute("ANALYZE messages")
        repo = StoreReadRepository
        base = {"uid": session.uid, "chat": PEER_JID, "limit": 51, "type": None, "before": None, "since": None}
        first = _plan(conn, repo.messages_query(type=None, before=None, since=None, after=None), base)
        deep_key = conn.execute("SELECT sent_at, message_id FROM messages WHERE session_uid = %s AND chat_jid = %s "
                                "ORDER BY sent_at DESC, message_id DESC OFFSET 90000 LIMIT 1",
                                (session.uid, PEER_JID)).fetchone()
        deep = _plan(conn, repo.messages_query(type=None, before=None, since=None, after=deep_key),
                     {**base, "at": deep_key["sent_at"], "id": deep_key["message_id"]})
        typed = _plan(conn, repo.messages_query(type="image", before=None, since=None, after=None),
                      {**base, "type": "image"})
    for name, plan in (("first page", first), ("deep page", deep)):
        assert "Index Scan using idx_messages_chat_time" in plan, (name, plan)
        assert "Seq Scan" not in plan and "Sort" not in plan, (name, plan)
        assert "rows=51 loops=1" in plan.split("\n")[0], (name, plan)  # stopped after limit + 1 rows
    # a type filter reads the same index (in order while matches are frequent; the planner may
    # pick a bitmap of it and a top-N sort when they are rare): never the whole table
    assert "idx_messages_chat_time" in typed and "Seq Scan" not in typed, typed
