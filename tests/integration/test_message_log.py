"""The message log behind replies and reactions: what is kept, how long, and that a
deleted session takes its rows with it."""
from __future__ import annotations

from chalicelib.repositories.message_log import PREVIEW_CHARS, MessageLogRepository, preview_of


def test_the_preview_is_the_text_or_else_the_caption_and_is_short():
    assert preview_of({"type": "text", "text": "hello"}) == "hello"
    assert preview_of({"type": "image", "caption": "the receipt"}) == "the receipt"
    assert preview_of({"type": "location", "name": "Office"}) == "Office"
    assert preview_of({"type": "sticker"}) is None
    assert len(preview_of({"type": "text", "text": "x" * 5000})) == PREVIEW_CHARS


def _record(db, sid, message_id, **extra):
    with db.connection() as conn:
        MessageLogRepository.record(conn, sid, **{"message_id": message_id, "chat_jid": "1@s.whatsapp.net",
                                                  "sender_jid": "1@s.whatsapp.net", "from_me": False,
                                                  "type": "text", "preview": "hi", "sent_at": 1700000000,
                                                  **extra})


def test_rows_are_pruned_after_the_retention_and_go_with_their_session(db, api, make_session, admin_headers):
    repo = MessageLogRepository(db)
    sid = make_session()["session_id"]
    _record(db, sid, "OLD")
    _record(db, sid, "NEW")
    # a later sighting of the same id keeps what it does not know (a receipt has no preview)
    _record(db, sid, "NEW", preview=None, sender_jid=None)
    assert repo.find(sid, "NEW")["preview"] == "hi" and repo.find(sid, "NEW")["sender_jid"] == "1@s.whatsapp.net"
    with db.connection() as conn:
        conn.execute("UPDATE message_log SET recorded_at = now() - interval '8 days' "
                     "WHERE session_id = %s AND message_id = 'OLD'", (sid,))
    assert repo.prune(7 * 86400) >= 1
    assert repo.find(sid, "OLD") is None and repo.find(sid, "NEW") is not None

    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code in (200, 202, 204)
    assert repo.find(sid, "NEW") is None
