"""Event translation fed with real neonize protobuf events (the objects whatsmeow's
callbacks hand to Python), through the neonize driver's event handler."""
from __future__ import annotations

from types import SimpleNamespace

from neonize.events import (ClientOutdatedEv, ConnectedEv, ConnectFailureEv, DisconnectedEv, LoggedOutEv,
                            MessageEv, PairStatusEv, QREv, ReceiptEv, StreamReplacedEv, TemporaryBanEv)
from neonize.proto.Neonize_pb2 import JID, Device, MessageInfo, MessageSource
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (ImageMessage, LocationMessage, Message,
                                                          ReactionMessage, ContactMessage)
from neonize.proto.waCommon.WACommon_pb2 import MessageKey

from runner_container.drivers.base import SessionConfig
from runner_container.drivers.neonize_driver import NeonizeClient, neonize_database_url, parse_jid
from runner_container.translate import decode_message, translate

PHONE = JID(User="5511999990000", Server="s.whatsapp.net", IsEmpty=False)
LID = JID(User="123456789012345", Server="lid", IsEmpty=False)
GROUP = JID(User="120363000000000000", Server="g.us", IsEmpty=False)


def _message(body: Message, *, sender=PHONE, chat=PHONE, alt=None, from_me=False) -> MessageEv:
    source = MessageSource(Chat=chat, Sender=sender, IsFromMe=from_me, IsGroup=chat.Server == "g.us")
    if alt is not None:
        source.SenderAlt.CopyFrom(alt)
    return MessageEv(Info=MessageInfo(ID="3EB0ABCDEF", Timestamp=1767225600, Pushname="Ana",
                                      MessageSource=source), Message=body)


def test_lifecycle_events():
    assert translate(QREv(Codes=["2@a,b,c,d", "2@e,f,g,h"])) == [("qr", {"code": "2@a,b,c,d",
                                                                        "codes": ["2@a,b,c,d", "2@e,f,g,h"]})]
    paired = translate(PairStatusEv(ID=JID(User="5511999990000", Device=7, Server="s.whatsapp.net"),
                                    Status=PairStatusEv.SUCCESS, Platform="android"))
    assert paired == [("paired", {"jid": "5511999990000:7@s.whatsapp.net", "business_name": None,
                                  "platform": "android"})]
    failed = translate(PairStatusEv(Status=PairStatusEv.ERROR, Error="bad code"))
    assert failed == [("pair_failed", {"code": "pair_failed", "message": "bad code"})]
    assert translate(ConnectedEv(status=True)) == [("connected", {})]
    assert translate(DisconnectedEv(status=True)) == [("disconnected", {"reason": "network"})]
    assert translate(LoggedOutEv(OnConnect=True, Reason=2)) == [("logged_out", {"reason": "logged_out",
                                                                                "on_connect": True})]


def test_failures_map_to_distinct_last_error_codes():
    codes = {
        "outdated": translate(ClientOutdatedEv())[0],
        "ban": translate(TemporaryBanEv(Code=2, Expire=3600))[0],
        "replaced": translate(StreamReplacedEv())[0],
        "405": translate(ConnectFailureEv(Reason=6, Message="client outdated"))[0],
        "unavailable": translate(ConnectFailureEv(Reason=10))[0],
        "main_gone": translate(ConnectFailureEv(Reason=4))[0],
    }
    assert codes["outdated"] == ("fatal", {"code": "client_outdated",
                                           "message": "WhatsApp refused this client version (405 client outdated)"})
    assert codes["ban"][0] == "fatal" and codes["ban"][1]["code"] == "temporary_ban"
    assert codes["ban"][1]["ban_reason"] == "blocked_by_users" and codes["ban"][1]["expires_in_seconds"] == 3600
    assert codes["replaced"][1]["code"] == "stream_replaced"
    assert codes["405"] == ("fatal", {"code": "client_outdated",
                                      "message": "WhatsApp refused the connection: client outdated"})
    assert codes["unavailable"][0] == "retryable" and codes["unavailable"][1]["code"] == "service_unavailable"
    assert codes["main_gone"] == ("logged_out", {"reason": "main_device_gone"})


def test_text_image_location_contact_reaction_messages():
    [(kind, text)] = translate(_message(Message(conversation="olá")))
    assert kind == "event" and text["event"] == "message.received"
    data = text["data"]
    assert data["type"] == "text" and data["text"] == "olá" and data["message_id"] == "3EB0ABCDEF"
    assert data["from"] == {"jid": "5511999990000@s.whatsapp.net", "phone": "5511999990000"}
    assert data["push_name"] == "Ana" and data["timestamp"] == "2026-01-01T00:00:00Z"

    image = translate(_message(Message(imageMessage=ImageMessage(caption="look", mimetype="image/jpeg",
                                                                 fileLength=2048))))[0][1]["data"]
    assert (image["type"], image["caption"], image["mime_type"], image["file_length"]) == \
        ("image", "look", "image/jpeg", 2048)

    location = translate(_message(Message(locationMessage=LocationMessage(
        degreesLatitude=-23.55, degreesLongitude=-46.63, name="Sé"))))[0][1]["data"]
    assert (location["type"], location["latitude"], location["longitude"], location["name"]) == \
        ("location", -23.55, -46.63, "Sé")

    contact = decode_message(Message(contactMessage=ContactMessage(displayName="Bia", vcard="BEGIN:VCARD")))
    assert contact == {"type": "contact", "display_name": "Bia", "vcard": "BEGIN:VCARD"}
    reaction = decode_message(Message(reactionMessage=ReactionMessage(key=MessageKey(ID="3EB0X"), text="👍")))
    assert reaction == {"type": "reaction", "message_id": "3EB0X", "emoji": "👍", "removed": False}

    mine = translate(_message(Message(conversation="sent elsewhere"), from_me=True))[0][1]
    assert mine["event"] == "message.sent"


def test_lid_senders_are_rendered_with_the_phone_number():
    # whatsmeow gives the phone as the alternate address
    data = translate(_message(Message(conversation="x"), sender=LID, chat=GROUP, alt=PHONE))[0][1]["data"]
    assert data["from"] == {"jid": "123456789012345@lid", "phone": "5511999990000", "lid": "123456789012345@lid"}
    assert data["is_group"] and data["chat"]["jid"] == "120363000000000000@g.us"
    # or neonize resolves it through the device store
    data = translate(_message(Message(conversation="x"), sender=LID),
                     resolve_pn=lambda jid: "5511888880000")[0][1]["data"]
    assert data["from"]["phone"] == "5511888880000"


def test_receipts():
    receipt = ReceiptEv(MessageSource=MessageSource(Chat=PHONE, Sender=PHONE), MessageIDs=["A", "B"],
                        Timestamp=1767225600, Type=4)
    [(kind, event)] = translate(receipt)
    assert event["event"] == "message.receipt"
    assert event["data"]["message_ids"] == ["A", "B"] and event["data"]["type"] == "read"


def test_the_neonize_client_handler_feeds_the_actor_sink():
    seen = []
    client = NeonizeClient(SimpleNamespace(neonize_url="postgres://x", polls=None), SessionConfig("s-1", None, None),
                           lambda kind, data: seen.append((kind, data)))
    me = Device(JID=JID(User="5511999990000", Device=3, Server="s.whatsapp.net"))
    client.client = SimpleNamespace(get_me=lambda: me,
                                    get_pn_from_lid=lambda jid: JID(User="5511777770000", Server="s.whatsapp.net"))
    client._on_event(None, ConnectedEv(status=True))
    client._on_event(None, _message(Message(conversation="hi"), sender=LID))
    assert seen[0] == ("connected", {"jid": "5511999990000:3@s.whatsapp.net"})
    assert client.socket_up.is_set()
    assert seen[1][0] == "event" and seen[1][1]["data"]["from"]["phone"] == "5511777770000"


def test_database_url_and_jid_forms():
    assert neonize_database_url("postgresql://postgres:@/db1?host=/tmp/pg") == \
        "postgres://postgres@/db1?host=/tmp/pg&sslmode=disable"
    assert neonize_database_url("postgresql://u:p@h:5432/d?sslmode=require") == "postgres://u:p@h:5432/d?sslmode=require"
    jid = parse_jid("5511999990000:12@s.whatsapp.net")
    assert (jid.User, jid.Device, jid.Server) == ("5511999990000", 12, "s.whatsapp.net")
