"""Every event kind the neonize driver subscribes to, built as the real protobuf
(`neonize.events`) and translated; inbound message shapes whatsmeow delivers (extended
text with a quote, video, voice note, document, sticker), and the download a received
media message carries, through the neonize client's own event handler."""
from __future__ import annotations

from types import SimpleNamespace

from neonize.events import (CallOfferEv, ChatPresenceEv, GroupInfoEv, JoinedGroupEv, MessageEv, PresenceEv,
                            StreamErrorEv)
from neonize.proto.Neonize_pb2 import JID, BasicCallMeta, GroupInfo, GroupName, MessageInfo, MessageSource
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (AudioMessage, ContextInfo, DocumentMessage,
                                                          ExtendedTextMessage, Message, StickerMessage,
                                                          VideoMessage)

from runner_container.drivers.base import SessionConfig
from runner_container.drivers.neonize_driver import NeonizeClient, _event_types
from runner_container.translate import translate

PHONE = JID(User="5511999990000", Server="s.whatsapp.net", IsEmpty=False)
OTHER = JID(User="5511888880000", Server="s.whatsapp.net", IsEmpty=False)
LID = JID(User="123456789012345", Server="lid", IsEmpty=False)
GROUP = JID(User="120363000000000000", Server="g.us", IsEmpty=False)


def _only(event):
    [(kind, data)] = translate(event)
    assert kind == "event"
    return data["event"], data["data"]


def test_every_subscribed_event_type_translates_to_something_or_is_deliberately_silent():
    silent = {"KeepAliveTimeout", "KeepAliveRestored"}  # the protobuf names of KeepAlive*Ev
    for event_type in _event_types():
        produced = translate(event_type())
        assert (produced == []) == (event_type.__name__ in silent), (event_type.__name__, produced)


def test_chat_presence_composing_recording_and_paused():
    source = MessageSource(Chat=GROUP, Sender=LID, SenderAlt=OTHER, IsGroup=True)
    name, data = _only(ChatPresenceEv(MessageSource=source, State=ChatPresenceEv.COMPOSING,
                                      Media=ChatPresenceEv.TEXT))
    assert name == "chat.presence"
    assert data == {"chat": {"jid": "120363000000000000@g.us", "phone": None},
                    "sender": {"jid": "123456789012345@lid", "phone": "5511888880000", "lid": "123456789012345@lid"},
                    "state": "composing", "media": "text"}
    _, recording = _only(ChatPresenceEv(MessageSource=source, State=ChatPresenceEv.COMPOSING,
                                        Media=ChatPresenceEv.AUDIO))
    assert (recording["state"], recording["media"]) == ("composing", "audio")
    _, paused = _only(ChatPresenceEv(MessageSource=MessageSource(Chat=PHONE, Sender=PHONE),
                                     State=ChatPresenceEv.PAUSED, Media=ChatPresenceEv.TEXT))
    assert paused["state"] == "paused" and paused["chat"]["phone"] == "5511999990000"


def test_presence_available_and_last_seen():
    name, online = _only(PresenceEv(From=PHONE, Unavailable=False))
    assert name == "presence.update"
    assert online == {"from": {"jid": "5511999990000@s.whatsapp.net", "phone": "5511999990000"},
                      "available": True, "last_seen": None}
    _, away = _only(PresenceEv(From=PHONE, Unavailable=True, LastSeen=1767225600))
    assert away["available"] is False and away["last_seen"] == "2026-01-01T00:00:00Z"
    # a LID presence is resolved through the device store, as neonize's get_pn_from_lid does
    [(_, event)] = translate(PresenceEv(From=LID, Unavailable=False), lambda jid: "5511777770000")
    assert event["data"]["from"]["phone"] == "5511777770000"


def test_call_offer():
    meta = BasicCallMeta(callID="CALL1234", timestamp=1767225600, **{"from": PHONE})
    name, data = _only(CallOfferEv(basicCallMeta=meta))
    assert name == "call.offer"
    assert data == {"call_id": "CALL1234", "from": {"jid": "5511999990000@s.whatsapp.net", "phone": "5511999990000"},
                    "timestamp": "2026-01-01T00:00:00Z"}


def test_joined_group_and_group_info_changes():
    name, joined = _only(JoinedGroupEv(Reason="invite", Type="new", Sender=PHONE,
                                       GroupInfo=GroupInfo(JID=GROUP, GroupName=GroupName(Name="Team"))))
    assert name == "group.update"
    assert joined == {"group": {"jid": "120363000000000000@g.us", "phone": None}, "kind": "joined",
                      "by": {"jid": "5511999990000@s.whatsapp.net", "phone": "5511999990000"}, "timestamp": None,
                      "changes": {"subject": "Team", "description": None, "announce": False, "locked": False,
                                  "participants_count": 0}}
    name, changed = _only(GroupInfoEv(JID=GROUP, Sender=PHONE, Timestamp=1767225600, Join=[OTHER]))
    assert name == "group.participants" and changed["action"] == "added"
    assert changed["group"]["jid"] == "120363000000000000@g.us"


def test_stream_error_is_retryable_with_its_code():
    assert translate(StreamErrorEv(Code="515")) == [("retryable", {"code": "stream_error",
                                                                   "message": "stream error 515"})]
    assert translate(StreamErrorEv()) == [("retryable", {"code": "stream_error", "message": "stream error"})]


def _message(body: Message, *, chat=PHONE, sender=PHONE) -> MessageEv:
    source = MessageSource(Chat=chat, Sender=sender, IsGroup=chat.Server == "g.us")
    return MessageEv(Info=MessageInfo(ID="3EB0FEED", Timestamp=1767225600, Pushname="Bia", MessageSource=source),
                     Message=body)


def test_extended_text_with_a_quote():
    body = Message(extendedTextMessage=ExtendedTextMessage(
        text="see https://example.org", contextInfo=ContextInfo(stanzaID="3EB0QUOTED", participant="x")))
    name, data = _only(_message(body))
    assert name == "message.received"
    assert data["type"] == "text" and data["text"] == "see https://example.org"
    assert data["quoted_message_id"] == "3EB0QUOTED"


def test_inbound_video_audio_document_sticker():
    video = _only(_message(Message(videoMessage=VideoMessage(mimetype="video/mp4", fileLength=1_000_000,
                                                             caption="clip"))))[1]
    assert {k: video[k] for k in ("type", "mime_type", "file_length", "caption")} == {
        "type": "video", "mime_type": "video/mp4", "file_length": 1_000_000, "caption": "clip"}
    voice = _only(_message(Message(audioMessage=AudioMessage(mimetype="audio/ogg; codecs=opus", fileLength=4000,
                                                             PTT=True, seconds=3))))[1]
    assert (voice["type"], voice["ptt"], voice["mime_type"]) == ("audio", True, "audio/ogg; codecs=opus")
    assert "caption" not in voice
    music = _only(_message(Message(audioMessage=AudioMessage(mimetype="audio/mpeg", fileLength=9))))[1]
    assert music["ptt"] is False
    document = _only(_message(Message(documentMessage=DocumentMessage(
        mimetype="application/pdf", fileLength=12345, fileName="invoice.pdf", caption="the invoice",
        contextInfo=ContextInfo(stanzaID="3EB0ASKED")))))[1]
    assert (document["type"], document["filename"], document["caption"], document["quoted_message_id"]) == \
        ("document", "invoice.pdf", "the invoice", "3EB0ASKED")
    sticker = _only(_message(Message(stickerMessage=StickerMessage(mimetype="image/webp", fileLength=3000))))[1]
    assert (sticker["type"], sticker["mime_type"], sticker["file_length"]) == ("sticker", "image/webp", 3000)
    assert "caption" not in sticker and "filename" not in sticker


def test_received_media_carries_a_download_of_that_very_message():
    """The neonize client puts `download` into the event: whatsmeow's download_any of the
    message that arrived (called later, off the event thread, by inbound_media)."""
    seen, asked = [], []
    client = NeonizeClient(SimpleNamespace(neonize_url="postgres://x", polls=None), SessionConfig("s-1", None, None),
                           lambda kind, data: seen.append((kind, data)))
    client.client = SimpleNamespace(download_any=lambda message: asked.append(message) or b"video bytes",
                                    get_pn_from_lid=lambda jid: JID(User="", Server=""))
    event = _message(Message(videoMessage=VideoMessage(mimetype="video/mp4", fileLength=11)))
    client._on_event(None, event)
    client._on_event(None, _message(Message(conversation="no media")))
    [(kind, media), (_, text)] = seen
    assert kind == "event" and media["data"]["type"] == "video"
    assert media["data"]["download"]() == b"video bytes" and asked == [event.Message]
    assert "download" not in text["data"]
