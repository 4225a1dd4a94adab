"""What each event changes in the message store (chalicelib/messaging/store_records.py), with
the event shapes of the webhook contract, and HISTORY_SYNC in the actor: no database."""
from __future__ import annotations

from dataclasses import replace

from chalicelib.messaging.store_records import store_ops
from tests.unit.fakes import MemoryStore, drain, make_ports, session_row

ANA = {"jid": "5511912345678@s.whatsapp.net", "phone": "5511912345678"}
ME = "5511999990001:7@s.whatsapp.net"


def _received(**fields):
    return {"message_id": "3EB0A", "chat": ANA, "from": ANA, "is_group": False, "from_me": False,
            "push_name": "Ana", "timestamp": "2026-11-01T10:00:00Z", "quoted_message_id": None, **fields}


def test_a_poll_keeps_its_question_options_and_count_as_content():
    [(name, row), _] = store_ops("message.received", _received(type="poll", name="Lunch?", options=["a", "b"],
                                                                 selectable_count=1, view_once=False), "full")
    assert name == "message" and row["type"] == "poll" and row["text"] is None
    assert row["content"] == {"name": "Lunch?", "options": ["a", "b"], "selectable_count": 1}


def test_metadata_mode_drops_text_content_media_and_reactions():
    ops = store_ops("message.received", _received(type="image", caption="secret", mime_type="image/png",
                                                  media={"media_key": "k", "sha256": "s"}), "metadata")
    row = ops[0][1]
    assert (row["text"], row["content"], row["media"]) == (None, None, None) and row["type"] == "image"
    assert store_ops("message.received", _received(type="reaction", emoji="👍"), "metadata") == []
    assert store_ops("message.received", _received(type="text", text="x"), "off") == []


def test_edits_revokes_and_reactions_as_the_events_carry_them():
    [edit] = store_ops("message.edited", {"message_id": "3EB0A", "chat": ANA, "sender": ANA, "type": "image",
                                          "caption": "new caption", "edited_at": "2026-11-01T10:05:00Z",
                                          "edit_id": "3EB0E"}, "full")
    assert edit[0] == "edit" and edit[1]["message_id"] == "3EB0A" and edit[1]["text"] == "new caption"
    [revoke] = store_ops("message.revoked", {"message_id": "3EB0A", "chat": ANA, "sender": ANA,
                                             "revoked_by": {"jid": "5511900000001@s.whatsapp.net",
                                                            "phone": "5511900000001"},
                                             "by_admin": True, "timestamp": "2026-11-01T10:06:00Z"}, "full")
    assert revoke == ("revoke", {"message_id": "3EB0A", "revoked_by": "5511900000001@s.whatsapp.net",
                                 "revoked_at": revoke[1]["revoked_at"]})
    assert revoke[1]["revoked_at"].isoformat() == "2026-11-01T10:06:00+00:00"
    [removed] = store_ops("message.received", _received(type="reaction", emoji="", removed=True), "full")
    assert removed == ("reaction", {"message_id": "3EB0A", "author": ANA["jid"], "emoji": ""})
    [ours] = store_ops("message.sent", {"to": ANA["jid"], "type": "reaction", "message_id": "3EB0NEW",
                                        "target_message_id": "3EB0A", "emoji": "🎉"}, "full", ME)
    assert ours == ("reaction", {"message_id": "3EB0A", "author": "5511999990001@s.whatsapp.net", "emoji": "🎉"})


def test_receipts_move_our_messages_or_read_the_chat():
    base = {"message_ids": ["3EB0S"], "chat": ANA, "sender": ANA, "is_group": False, "timestamp": None}
    assert store_ops("message.receipt", {**base, "type": "played"}, "full")[0][1]["status"] == "played"
    assert store_ops("message.receipt", {**base, "type": "read_self"}, "full") == [
        ("chat_read", {"chat_jid": ANA["jid"], "message_ids": ["3EB0S"]})]
    assert store_ops("message.receipt", {**base, "type": "retry"}, "full") == []


def test_a_lid_chat_is_stored_under_the_phone_when_known_and_groups_keep_their_jid():
    lid = {"jid": "123456789@lid", "phone": "5511912345678", "lid": "123456789@lid"}
    row = store_ops("message.received", _received(chat=lid, **{"from": lid}, type="text", text="x"), "full")[0][1]
    assert row["chat_jid"] == ANA["jid"] and row["sender_lid"] == "123456789@lid"
    group = {"jid": "120363012345678901@g.us", "phone": None}
    row = store_ops("message.received", _received(chat=group, is_group=True, type="text", text="x"), "full")[0][1]
    assert row["chat_jid"] == group["jid"] and row["is_group"] is True


def _history():
    return {"sync_type": "initial_bootstrap", "chunk_order": 1, "progress": 100, "contacts": [],
            "conversations": [{"jid": ANA["jid"], "messages": [_received(type="text", text="old")]}]}


def test_history_sync_off_writes_nothing_and_recent_writes_one_counted_event():
    row = session_row()
    for mode, expected in (("off", []), ("recent", ["history.synced"])):
        ports = make_ports(MemoryStore(row))
        ports.settings = replace(ports.settings, history_sync=mode)
        actor = ports.actors.actor_for(row["session_id"])
        actor.load()
        actor.commands.received("history.synced", {"history": _history()})
        drain(actor)
        assert ports.store.events() == expected, mode
        if expected:
            [change] = [c for _, c in ports.store.changes if c.event == "history.synced"]
            assert "history" not in change.data  # the rows go to the store, not into the webhook
            assert change.store[0][0] == "history" and change.data["sync_type"] == "initial_bootstrap"
