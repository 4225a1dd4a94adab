"""Outgoing message building with neonize's own builders, offline.

A real neonize client (device store in the test PostgreSQL, never connected) builds every
message type; only the media upload to WhatsApp's servers is replaced, by a fake answer,
since those servers cannot be reached from here. The protobufs are then checked field by
field.
"""
from __future__ import annotations

import base64
import struct
import uuid
import zlib

import pytest

from runner_container import wa_messages
from runner_container.drivers.neonize_driver import neonize_database_url

TO = "5511912345678@s.whatsapp.net"
ME = "5511000000000@s.whatsapp.net"


def tiny_png() -> bytes:
    raw = b"\x00" + b"\xff\x00\x00" * 4
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def client(stack):
    from neonize.client import NewClient
    from neonize.proto.Neonize_pb2 import UploadResponse

    instance = NewClient(neonize_database_url(stack.env["DATABASE_URL"]), uuid=f"build-{uuid.uuid4().hex[:8]}")
    uploads = []

    def fake_upload(data, media_type=None):
        uploads.append(data)
        return UploadResponse(url="https://mmg.whatsapp.net/d/f/x.enc", DirectPath="/v/t62/x.enc",
                              MediaKey=b"k" * 32, FileEncSHA256=b"e" * 32, FileSHA256=b"s" * 32,
                              FileLength=len(data))

    instance.upload = fake_upload
    instance.uploads = uploads
    return instance


def build(client, **payload):
    payload.setdefault("to", TO)
    return wa_messages.build(client, payload, own_jid=ME, fetch_url=lambda url, limit: b"fetched:" + url.encode())


def test_plain_text_goes_as_a_string_with_the_preview_flag(client):
    out = build(client, type="text", text="see https://example.com", link_preview=True)
    assert out.message == "see https://example.com" and out.link_preview is True
    assert (out.chat.User, out.chat.Server) == ("5511912345678", "s.whatsapp.net")


def test_a_quoted_text_carries_the_quoted_id(client):
    out = build(client, type="text", text="yes", quoted_message_id="3EB0ABC")
    info = out.message.extendedTextMessage.contextInfo
    assert out.message.extendedTextMessage.text == "yes"
    assert info.stanzaID == "3EB0ABC" and info.participant == TO


def test_a_reply_names_the_quoted_author_and_shows_its_preview(client):
    # `quoted` is what the runner found in the message log: here our own earlier message,
    # whose author is our own JID without the device part
    out = build(client, type="text", text="as promised", quoted_message_id="3EB0MINE",
                quoted={"message_id": "3EB0MINE", "from_me": True, "sender": "5511000000000:7@s.whatsapp.net",
                        "preview": "I will send the file tomorrow"})
    info = out.message.extendedTextMessage.contextInfo
    assert (info.stanzaID, info.participant) == ("3EB0MINE", ME)
    assert info.quotedMessage.conversation == "I will send the file tomorrow"


def test_a_reply_in_a_group_names_the_member_who_wrote(client):
    group = "120363025246125888@g.us"
    member = "5511987654321@s.whatsapp.net"
    out = build(client, to=group, type="location", latitude=1.0, longitude=2.0, quoted_message_id="3EB0G",
                quoted={"message_id": "3EB0G", "from_me": False, "sender": member, "preview": "where?"})
    info = out.message.locationMessage.contextInfo
    assert (out.chat.Server, info.participant, info.quotedMessage.conversation) == ("g.us", member, "where?")


def test_a_reaction_to_a_group_members_message_keys_it_by_author(client):
    group = "120363025246125888@g.us"
    member = "5511987654321@s.whatsapp.net"
    key = build(client, to=group, type="reaction", message_id="3EB0G", emoji="🎉",
                target={"message_id": "3EB0G", "from_me": False, "sender": member}).message.reactionMessage.key
    assert (key.ID, key.fromMe, key.participant, key.remoteJID) == ("3EB0G", False, member, group)
    # the log's answer wins over the API's hint
    mine = build(client, type="reaction", message_id="M2", emoji="👍", from_me=False,
                 target={"message_id": "M2", "from_me": True, "sender": ME}).message.reactionMessage.key
    assert mine.fromMe is True


def test_image_is_uploaded_and_described(client):
    png = tiny_png()
    out = build(client, type="image", media_base64=base64.b64encode(png).decode(), caption="look",
                view_once=True, quoted_message_id="Q1")
    image = out.message.imageMessage
    assert client.uploads[-1] == png
    assert image.caption == "look" and image.viewOnce is True and image.mimetype == "image/png"
    assert image.fileLength == len(png) and image.mediaKey == b"k" * 32 and image.JPEGThumbnail
    assert image.contextInfo.stanzaID == "Q1"


def test_document_keeps_name_and_type(client):
    out = build(client, type="document", media_url="https://files.example/report.pdf",
                filename="report.pdf", mime_type="application/pdf", caption="Q3")
    document = out.message.documentMessage
    assert client.uploads[-1] == b"fetched:https://files.example/report.pdf"
    assert (document.fileName, document.mimetype, document.caption) == ("report.pdf", "application/pdf", "Q3")


def test_location_contact_reaction_edit_revoke_poll(client):
    location = build(client, type="location", latitude=-23.5, longitude=-46.6, name="Office", address="Av. X").message
    assert (location.locationMessage.degreesLatitude, location.locationMessage.name) == (-23.5, "Office")

    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Ann Lee\nTEL;waid=5511987654321:+55 11 98765-4321\nEND:VCARD"
    contact = build(client, type="contact", vcard=vcard).message.contactMessage
    assert contact.displayName == "Ann Lee" and contact.vcard == vcard

    reaction = build(client, type="reaction", message_id="M1", emoji="👍", from_me=True).message.reactionMessage
    assert (reaction.key.ID, reaction.text, reaction.key.fromMe) == ("M1", "👍", True)
    removed = build(client, type="reaction", message_id="M1", emoji="").message.reactionMessage
    assert removed.text == ""

    edit = build(client, type="edit", message_id="M2", text="fixed").message
    inner = edit.editedMessage.message.protocolMessage
    assert inner.key.ID == "M2" and inner.editedMessage.conversation == "fixed"

    revoke = build(client, type="revoke", message_id="M3").message.protocolMessage
    assert revoke.key.ID == "M3" and revoke.key.fromMe is True
    assert revoke.type == revoke.REVOKE

    poll = build(client, type="poll", question="Lunch?", options=["pizza", "sushi", "tacos"],
                 selectable_count=2).message.pollCreationMessage
    assert poll.name == "Lunch?" and [o.optionName for o in poll.options] == ["pizza", "sushi", "tacos"]
    assert poll.selectableOptionsCount == 2


def test_group_recipients_and_unknown_types(client):
    out = build(client, to="120363041234567890@g.us", type="text", text="hello group")
    assert out.chat.Server == "g.us"
    with pytest.raises(wa_messages.MessageBuildError) as info:
        build(client, type="fax", text="x")
    assert info.value.code == "unsupported_type"


def test_audio_voice_note_needs_ffmpeg_for_its_duration(client, tmp_path):
    import subprocess

    wav = tmp_path / "a.ogg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "libopus", str(wav)],
                   check=True)
    audio = build(client, type="audio", media_base64=base64.b64encode(wav.read_bytes()).decode(),
                  voice_note=True).message.audioMessage
    assert audio.PTT is True and audio.seconds >= 0


def test_mentions_go_in_context_info_and_as_at_numbers_in_the_text(client):
    message = build(client, to="120363041234567890@g.us", type="text", text="hi @5511912345678, see this",
                    mentions=["5511912345678@s.whatsapp.net", "5511987654321@s.whatsapp.net"]).message
    text = message.extendedTextMessage
    assert list(text.contextInfo.mentionedJID) == ["5511912345678@s.whatsapp.net", "5511987654321@s.whatsapp.net"]
    # the one the text already names stays where it is; the other is appended, as WhatsApp shows mentions
    assert text.text == "hi @5511912345678, see this @5511987654321"
    quoted = build(client, type="text", text="yes", quoted_message_id="Q9",
                   mentions=["5511987654321@s.whatsapp.net"]).message.extendedTextMessage
    assert quoted.contextInfo.stanzaID == "Q9" and list(quoted.contextInfo.mentionedJID) == [
        "5511987654321@s.whatsapp.net"]
    assert quoted.text == "yes @5511987654321"


def test_mention_all_mentions_every_participant_without_changing_the_text(client):
    everyone = ["5511912345678@s.whatsapp.net", "5511987654321@s.whatsapp.net", "123456789012345@lid"]
    text = build(client, to="120363041234567890@g.us", type="text", text="meeting at 3", mention_all=True,
                 mention_all_jids=everyone).message.extendedTextMessage
    assert text.text == "meeting at 3" and list(text.contextInfo.mentionedJID) == everyone


def test_a_caption_carries_mentions_and_view_once_is_set_on_video(client, tmp_path):
    import subprocess

    png = tiny_png()
    image = build(client, type="image", media_base64=base64.b64encode(png).decode(), caption="look",
                  mentions=["5511987654321@s.whatsapp.net"]).message.imageMessage
    assert image.caption == "look @5511987654321"
    assert list(image.contextInfo.mentionedJID) == ["5511987654321@s.whatsapp.net"] and image.viewOnce is False
    mp4 = tmp_path / "v.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16:d=0.2",
                    "-pix_fmt", "yuv420p", str(mp4)], check=True)
    video = build(client, type="video", media_base64=base64.b64encode(mp4.read_bytes()).decode(), view_once=True)
    assert video.message.videoMessage.viewOnce is True


def test_what_neonize_builds_reads_back_as_the_events_the_other_side_gets(client):
    """The edit, revoke and poll neonize builds, received by the other phone, become
    message.edited, message.revoked and a poll whose votes decrypt with its own secret."""
    import os

    from neonize.events import MessageEv
    from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource

    from runner_container import poll_crypto
    from runner_container.translate import poll_record, translate
    from runner_container.translate_common import parse_jid_text

    def as_received(message, msg_id):
        source = MessageSource(Chat=parse_jid_text(ME), Sender=parse_jid_text(ME), IsFromMe=False)
        return MessageEv(Info=MessageInfo(ID=msg_id, Timestamp=1767225600, MessageSource=source), Message=message)

    [(_, edited)] = translate(as_received(build(client, type="edit", message_id="M2", text="fixed").message, "E1"))
    assert (edited["event"], edited["data"]["message_id"], edited["data"]["text"]) == ("message.edited", "M2", "fixed")
    [(_, revoked)] = translate(as_received(build(client, type="revoke", message_id="M3").message, "R1"))
    assert (revoked["event"], revoked["data"]["message_id"], revoked["data"]["by_admin"]) == ("message.revoked",
                                                                                          "M3", False)
    poll = build(client, type="poll", question="Lunch?", options=["pizza", "sushi"], selectable_count=1).message
    assert len(poll.messageContextInfo.messageSecret) == 32  # whatsmeow's BuildPollCreation secret
    record = poll_record(as_received(poll, "P1"))
    assert record is not None and record["secret"] == poll.messageContextInfo.messageSecret
    payload, iv = poll_crypto.encrypt_vote(record["secret"], "P1", ME, TO, ["sushi"], iv=os.urandom(12))
    assert poll_crypto.option_names(record["options"], poll_crypto.decrypt_vote(
        record["secret"], "P1", [ME], [TO], payload, iv) or []) == ["sushi"]
