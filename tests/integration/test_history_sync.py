"""History sync and contact profiles translated from real neonize protobufs (no network):
a `HistorySyncEv` as whatsmeow delivers it, HISTORY_SYNC's bounds, the store operations it
becomes, and the runner's write of it (one `history.synced` event counting what was stored)."""
from __future__ import annotations

import uuid

from neonize.events import HistorySyncEv
from neonize.proto.Neonize_pb2 import JID, GetUserInfoSingleReturnFunction, UserInfo, VerifiedName
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, ExtendedTextMessage, ImageMessage, Message
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import (Conversation, HistorySync, HistorySyncMsg,
                                                                       Pushname)
from neonize.proto.waVnameCert.WAWebProtobufsVnameCert_pb2 import VerifiedNameCertificate
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from chalicelib.messaging.store_records import history_ops
from chalicelib.repositories.session_store import SessionStore
from runner_container.history import RECENT_MESSAGES_PER_CHAT, bounded, synced_event
from runner_container.translate import translate
from runner_container.wa_chats import profile_json

PEER = "5511912345678@s.whatsapp.net"
GROUP = "120363012345678901@g.us"


def _info(chat, message_id, message, at, *, from_me=False, participant=None, status=0, push_name=None):
    return HistorySyncMsg(message=WebMessageInfo(
        key=MessageKey(remoteJID=chat, fromMe=from_me, ID=message_id, participant=participant),
        message=message, messageTimestamp=at, status=status, pushName=push_name))


def _event(sync_type=HistorySync.INITIAL_BOOTSTRAP, per_chat=3):
    texts = [_info(PEER, f"3EB0T{n}", Message(conversation=f"text {n}"), 1790000000 + n) for n in range(per_chat)]
    reply = _info(PEER, "3EB0RE", Message(extendedTextMessage=ExtendedTextMessage(
        text="re", contextInfo=ContextInfo(stanzaID="3EB0T0"))), 1790000500, from_me=True, status=4)
    image = _info(GROUP, "3EB0IM", Message(imageMessage=ImageMessage(caption="a photo", mimetype="image/jpeg",
                                                                      fileLength=1234)),
                  1790000600, participant="5511900000001:3@s.whatsapp.net", push_name="Bia")
    stub = HistorySyncMsg(message=WebMessageInfo(key=MessageKey(remoteJID=GROUP, ID="3EB0STUB"),
                                                 messageStubType=20, messageTimestamp=1790000001))
    blob = HistorySync(syncType=sync_type, chunkOrder=2, progress=40, conversations=[
        Conversation(ID=PEER, name="Ana", unreadCount=2, archived=True, muteEndTime=1799999999,
                     conversationTimestamp=1790000500, messages=[*texts, reply]),
        Conversation(ID=GROUP, displayName="Team", pinned=1, messages=[image, stub])],
        pushnames=[Pushname(ID=PEER, pushname="Ana Paula"), Pushname(ID="5511900000001@s.whatsapp.net", pushname="")])
    return HistorySyncEv(Data=blob)


def test_a_history_sync_blob_translates_to_chats_messages_and_push_names():
    [(kind, payload)] = translate(_event())
    assert kind == "event" and payload["event"] == "history.synced"
    history = payload["data"]["history"]
    assert (history["sync_type"], history["chunk_order"], history["progress"]) == ("initial_bootstrap", 2, 40)
    ana, team = history["conversations"]
    assert (ana["jid"], ana["name"], ana["unread_count"], ana["archived"], ana["muted_until"]) == (
        PEER, "Ana", 2, True, 1799999999)
    assert (team["jid"], team["name"], team["pinned"]) == (GROUP, "Team", True)
    reply = [m for m in ana["messages"] if m["message_id"] == "3EB0RE"][0]
    assert (reply["from_me"], reply["status"], reply["quoted_message_id"], reply["text"]) == (True, "read", "3EB0T0",
                                                                                              "re")
    [image] = team["messages"]  # the system stub is not a message
    assert image["from"] == {"jid": "5511900000001@s.whatsapp.net", "phone": "5511900000001"}
    assert (image["type"], image["caption"], image["mime_type"], image["push_name"]) == ("image", "a photo",
                                                                                         "image/jpeg", "Bia")
    assert history["contacts"] == [{"jid": PEER, "phone": "5511912345678", "push_name": "Ana Paula"}]


def test_history_sync_bounds_recent_full_and_off():
    big = translate(_event(per_chat=RECENT_MESSAGES_PER_CHAT + 20))[0][1]["data"]["history"]
    recent = bounded(big, "recent")
    kept = recent["conversations"][0]["messages"]
    assert len(kept) == RECENT_MESSAGES_PER_CHAT and kept[0]["message_id"] == "3EB0RE"  # the newest ones
    assert len(bounded(big, "full")["conversations"][0]["messages"]) == RECENT_MESSAGES_PER_CHAT + 21
    assert bounded(big, "off") is None
    full_chunk = translate(_event(sync_type=HistorySync.FULL))[0][1]["data"]["history"]
    assert bounded(full_chunk, "recent") is None and bounded(full_chunk, "full") is not None


def test_history_becomes_store_operations_that_never_count_as_unread():
    history = translate(_event())[0][1]["data"]["history"]
    ops = history_ops(history, "full", "5511999990001:4@s.whatsapp.net")
    assert [name for name, _ in ops].count("message") == 5 and [name for name, _ in ops].count("chat") == 2
    assert all(values["history"] for name, values in ops if name == "message")
    mine = [v for n, v in ops if n == "message" and v["message_id"] == "3EB0RE"][0]
    assert mine["sender_jid"] == "5511999990001@s.whatsapp.net" and mine["status"] == "read"
    metadata = history_ops(history, "metadata")
    assert all(v["text"] is None and v["media"] is None for n, v in metadata if n == "message")


def test_the_runner_stores_a_chunk_and_counts_it_in_history_synced(container, make_session):
    created = make_session(session_id=f"hs-{uuid.uuid4().hex[:8]}")
    history = bounded(translate(_event())[0][1]["data"]["history"], "recent")
    from chalicelib.repositories.session_store import StateChange

    change = StateChange(event="history.synced", data=synced_event(history), store=(("history", history),))
    store = SessionStore(container.db, container.events)
    envelope = store.apply(created["session_id"], change, uid=created["id"])
    assert envelope["data"] == {"sync_type": "initial_bootstrap", "chunk_order": 2, "progress": 40,
                                "chats": 2, "messages": 5, "contacts": 1}
    again = store.apply(created["session_id"], change, uid=created["id"])  # a chunk sent twice adds no message
    assert again["data"]["messages"] == 0
    with container.db.connection() as conn:
        chat = conn.execute("SELECT * FROM chats WHERE session_uid = %s AND chat_jid = %s",
                            (created["id"], PEER)).fetchone()
    assert (chat["unread_count"], chat["archived"], chat["last_message_id"]) == (2, True, "3EB0RE")


def test_a_contact_profile_from_neonize_user_info():
    business = VerifiedName(Details=VerifiedNameCertificate.Details(verifiedName="Ana's Bakery"))
    users = [GetUserInfoSingleReturnFunction(JID=JID(User="5511912345678", Server="s.whatsapp.net"),
                                             UserInfo=UserInfo(Status="at work", PictureID="123",
                                                               VerifiedName=business))]
    assert profile_json(PEER, users, "https://pps.whatsapp.net/v/t61/x.jpg") == {
        "jid": PEER, "phone": "5511912345678", "on_whatsapp": True, "about": "at work",
        "picture_url": "https://pps.whatsapp.net/v/t61/x.jpg", "business_name": "Ana's Bakery"}
    assert profile_json("5511912345670@s.whatsapp.net", [], None)["on_whatsapp"] is False
