"""Issue 15's events, translated from real neonize protobuf objects (the `MessageEv`,
`ReceiptEv`, `GroupInfoEv` whatsmeow hands to Python): edits, revokes by the sender and by
a group admin, reactions added and taken back, polls and their encrypted votes read back
as option names, receipts of every kind, disappearing and view-once wrappers, group
participant and settings changes, and contacts' name changes."""
from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from neonize.events import GroupInfoEv, MessageEv, ReceiptEv
from neonize.proto.Neonize_pb2 import (JID, GroupAnnounce, GroupEphemeral, GroupLocked, GroupName, GroupTopic,
                                       MessageInfo, MessageSource)
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from runner_container import poll_crypto
from runner_container.translate import NameTracker, poll_record, translate

ME = JID(User="5511000000000", Server="s.whatsapp.net", IsEmpty=False)
ANA = JID(User="5511999990000", Server="s.whatsapp.net", IsEmpty=False)
BIA = JID(User="5511888880000", Server="s.whatsapp.net", IsEmpty=False)
ADMIN = JID(User="5511777770000", Server="s.whatsapp.net", IsEmpty=False)
GROUP = JID(User="120363000000000000", Server="g.us", IsEmpty=False)


def person(jid: JID) -> dict:
    return {"jid": f"{jid.User}@{jid.Server}", "phone": jid.User}


GROUP_R = {"jid": "120363000000000000@g.us", "phone": None}


def received(body, *, sender=ANA, chat=None, from_me=False, msg_id="3EB0NEW", edit="", push_name="Ana", **flags):
    chat = chat or sender
    return MessageEv(Info=MessageInfo(ID=msg_id, Timestamp=1767225600, Pushname=push_name, Edit=edit,
                                      MessageSource=MessageSource(Chat=chat, Sender=sender, IsFromMe=from_me,
                                                                  IsGroup=chat.Server == "g.us")),
                     Message=body, **flags)


def events(event, **kw):
    out = translate(event, **kw)
    assert all(kind == "event" for kind, _ in out)
    return [(data["event"], data["data"]) for _, data in out]


def test_an_edit_says_which_message_and_its_new_text_as_whatsapp_wraps_it():
    protocol = wa.ProtocolMessage(key=MessageKey(remoteJID="5511000000000@s.whatsapp.net", fromMe=True, ID="3EB0OLD"),
                                  type=wa.ProtocolMessage.MESSAGE_EDIT, timestampMS=1767225660000,
                                  editedMessage=wa.Message(conversation="fixed text"))
    wrapped = wa.Message(editedMessage=wa.FutureProofMessage(message=wa.Message(protocolMessage=protocol)))
    [(name, data)] = events(received(wrapped, edit="1", IsEdit=True))
    assert name == "message.edited"
    assert data == {"message_id": "3EB0OLD", "chat": person(ANA), "is_group": False, "from_me": False,
                    "sender": person(ANA), "type": "text", "text": "fixed text",
                    "edited_at": "2026-01-01T00:01:00Z", "edit_id": "3EB0NEW"}
    # a caption edit, as whatsmeow gives it already unwrapped
    caption = wa.ProtocolMessage(key=MessageKey(ID="3EB0PIC"), type=wa.ProtocolMessage.MESSAGE_EDIT,
                                 editedMessage=wa.Message(imageMessage=wa.ImageMessage(caption="new caption")))
    [(name, data)] = events(received(wa.Message(protocolMessage=caption)))
    assert (name, data["type"], data["caption"], data["message_id"]) == ("message.edited", "image", "new caption",
                                                                           "3EB0PIC")
    assert data["edited_at"] == "2026-01-01T00:00:00Z"  # no timestampMS: the edit's own time


def test_a_revoke_by_the_sender_and_by_a_group_admin():
    own = wa.ProtocolMessage(key=MessageKey(remoteJID="5511000000000@s.whatsapp.net", fromMe=True, ID="3EB0GONE"),
                             type=wa.ProtocolMessage.REVOKE)
    [(name, data)] = events(received(wa.Message(protocolMessage=own), edit="7"))
    assert name == "message.revoked"
    assert data == {"message_id": "3EB0GONE", "chat": person(ANA), "is_group": False, "from_me": False,
                    "sender": person(ANA), "revoked_by": person(ANA), "by_admin": False,
                    "timestamp": "2026-01-01T00:00:00Z"}

    by_admin = wa.ProtocolMessage(key=MessageKey(remoteJID="120363000000000000@g.us", fromMe=False, ID="3EB0BAD",
                                                 participant="5511888880000@s.whatsapp.net"),
                                  type=wa.ProtocolMessage.REVOKE)
    [(name, data)] = events(received(wa.Message(protocolMessage=by_admin), sender=ADMIN, chat=GROUP, edit="8"))
    assert name == "message.revoked" and data["by_admin"] is True and data["is_group"] is True
    assert data["sender"] == person(BIA) and data["revoked_by"] == person(ADMIN) and data["chat"] == GROUP_R
    # an older whatsmeow without the edit attribute: the key naming someone else tells the same
    [(_, again)] = events(received(wa.Message(protocolMessage=by_admin), sender=ADMIN, chat=GROUP))
    assert again["by_admin"] is True
    member_own = wa.ProtocolMessage(key=MessageKey(remoteJID="120363000000000000@g.us", fromMe=True, ID="3EB0MINE",
                                                   participant="5511888880000@s.whatsapp.net"),
                                    type=wa.ProtocolMessage.REVOKE)
    [(_, own_in_group)] = events(received(wa.Message(protocolMessage=member_own), sender=BIA, chat=GROUP, edit="7"))
    assert own_in_group["by_admin"] is False and own_in_group["sender"] == person(BIA)


def test_protocol_messages_that_are_not_edits_or_revokes_send_nothing():
    notice = wa.ProtocolMessage(type=wa.ProtocolMessage.EPHEMERAL_SETTING, ephemeralExpiration=86400)
    assert translate(received(wa.Message(protocolMessage=notice))) == []


def test_a_reaction_and_its_removal_are_said_plainly():
    key = MessageKey(remoteJID="5511999990000@s.whatsapp.net", fromMe=True, ID="3EB0MINE")
    [(_, added)] = events(received(wa.Message(reactionMessage=wa.ReactionMessage(key=key, text="❤️"))))
    assert (added["type"], added["message_id"], added["emoji"], added["removed"]) == ("reaction", "3EB0MINE", "❤️",
                                                                                      False)
    [(_, removed)] = events(received(wa.Message(reactionMessage=wa.ReactionMessage(key=key, text=""))))
    assert (removed["emoji"], removed["removed"]) == ("", True)


def _poll_message(secret: bytes) -> wa.Message:
    poll = wa.PollCreationMessage(name="Lunch?", selectableOptionsCount=2,
                                  options=[wa.PollCreationMessage.Option(optionName=n) for n in ("pizza", "sushi", "tacos")])
    return wa.Message(pollCreationMessage=poll, messageContextInfo=wa.MessageContextInfo(messageSecret=secret))


def test_a_received_poll_is_a_message_of_type_poll_and_its_secret_is_kept():
    secret = os.urandom(32)
    event = received(_poll_message(secret), chat=GROUP, msg_id="3EB0POLL")
    [(name, data)] = events(event)
    assert name == "message.received"
    assert (data["type"], data["name"], data["options"], data["selectable_count"]) == (
        "poll", "Lunch?", ["pizza", "sushi", "tacos"], 2)
    assert "secret" not in str(data) and secret.hex() not in str(data)
    record = poll_record(event)
    assert record == {"poll_id": "3EB0POLL", "chat_jid": "120363000000000000@g.us",
                      "creator_jid": "5511999990000@s.whatsapp.net", "creator_alt": None, "secret": secret,
                      "name": "Lunch?", "options": ["pizza", "sushi", "tacos"], "selectable_count": 2}
    assert poll_record(received(wa.Message(conversation="hi"))) is None


def _whatsmeow_vote(secret: bytes, poll_id: str, creator: str, voter: str, names: list[str]) -> tuple[bytes, bytes]:
    """A vote encrypted exactly as whatsmeow's EncryptPollVote does (msgsecret.go), written
    here from the primitives so the runner's decryption is checked against the spec, not itself."""
    plain = wa.PollVoteMessage(selectedOptions=[hashlib.sha256(n.encode()).digest() for n in names]).SerializeToString()
    info = (poll_id + creator + voter + "Poll Vote").encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    iv = os.urandom(12)
    return AESGCM(key).encrypt(iv, plain, f"{poll_id}\x00{voter}".encode()), iv


def _vote_event(payload: bytes, iv: bytes, *, voter=BIA, chat=GROUP, creator="5511999990000@s.whatsapp.net"):
    key = MessageKey(remoteJID="120363000000000000@g.us", fromMe=False, ID="3EB0POLL", participant=creator)
    update = wa.PollUpdateMessage(pollCreationMessageKey=key, vote=wa.PollEncValue(encPayload=payload, encIV=iv),
                                  senderTimestampMS=1767225700000)
    return received(wa.Message(pollUpdateMessage=update), sender=voter, chat=chat, msg_id="3EB0VOTE")


def test_a_poll_vote_is_decrypted_to_the_option_names():
    secret = os.urandom(32)
    record = poll_record(received(_poll_message(secret), chat=GROUP, msg_id="3EB0POLL"))
    kept = {"3EB0POLL": record}
    payload, iv = _whatsmeow_vote(secret, "3EB0POLL", "5511999990000@s.whatsapp.net",
                                  "5511888880000@s.whatsapp.net", ["tacos", "pizza"])
    [(name, data)] = events(_vote_event(payload, iv), polls=kept.get)
    assert name == "poll.vote"
    assert data == {"poll_id": "3EB0POLL", "message_id": "3EB0VOTE", "chat": GROUP_R, "is_group": True,
                    "from_me": False, "voter": person(BIA), "options": ["pizza", "tacos"],
                    "timestamp": "2026-01-01T00:01:40Z"}
    # a withdrawn vote: no option selected
    payload, iv = _whatsmeow_vote(secret, "3EB0POLL", "5511999990000@s.whatsapp.net",
                                  "5511888880000@s.whatsapp.net", [])
    [(_, withdrawn)] = events(_vote_event(payload, iv), polls=kept.get)
    assert withdrawn["options"] == []
    # the runner's own encryption (the emulator's voting phone) is the same as whatsmeow's
    payload, iv = poll_crypto.encrypt_vote(secret, "3EB0POLL", "5511999990000@s.whatsapp.net",
                                           "5511888880000:3@s.whatsapp.net", ["sushi"])
    [(_, same)] = events(_vote_event(payload, iv), polls=kept.get)
    assert same["options"] == ["sushi"]


def test_a_vote_on_an_unknown_poll_or_that_does_not_decrypt_says_why():
    secret = os.urandom(32)
    payload, iv = _whatsmeow_vote(secret, "3EB0POLL", "5511999990000@s.whatsapp.net",
                                  "5511888880000@s.whatsapp.net", ["pizza"])
    [(_, unknown)] = events(_vote_event(payload, iv), polls=lambda poll_id: None)
    assert (unknown["options"], unknown["error"]) == (None, "poll_unknown")
    [(_, no_store)] = events(_vote_event(payload, iv))
    assert no_store["error"] == "poll_unknown"
    wrong = poll_record(received(_poll_message(os.urandom(32)), chat=GROUP, msg_id="3EB0POLL"))
    [(_, failed)] = events(_vote_event(payload, iv), polls={"3EB0POLL": wrong}.get)
    assert (failed["options"], failed["error"]) == (None, "decrypt_failed")


def test_receipts_of_every_kind():
    kinds = {ReceiptEv.DELIVERED: "delivered", ReceiptEv.READ: "read", ReceiptEv.PLAYED: "played",
             ReceiptEv.READ_SELF: "read_self", ReceiptEv.PLAYED_SELF: "played_self", ReceiptEv.SENDER: "sender",
             ReceiptEv.RETRY: "retry", ReceiptEv.SERVER_ERROR: "server_error", ReceiptEv.INACTIVE: "inactive",
             ReceiptEv.PEER_MSG: "peer_msg", ReceiptEv.HISTORY_SYNC: "history_sync"}
    for value, name in kinds.items():
        [(event, data)] = events(ReceiptEv(MessageSource=MessageSource(Chat=GROUP, Sender=BIA, IsGroup=True),
                                           MessageIDs=["3EB0A", "3EB0B"], Timestamp=1767225600, Type=value))
        assert event == "message.receipt"
        assert data == {"message_ids": ["3EB0A", "3EB0B"], "type": name, "chat": GROUP_R, "sender": person(BIA),
                        "is_group": True, "timestamp": "2026-01-01T00:00:00Z"}


def test_disappearing_and_view_once_messages_arrive_unwrapped_with_flags():
    image = wa.Message(imageMessage=wa.ImageMessage(mimetype="image/jpeg", caption="once", viewOnce=True))
    view_once = wa.Message(viewOnceMessageV2=wa.FutureProofMessage(message=image))
    ephemeral = wa.Message(ephemeralMessage=wa.FutureProofMessage(message=view_once))
    [(_, data)] = events(received(ephemeral))
    assert (data["type"], data["caption"], data["ephemeral"], data["view_once"]) == ("image", "once", True, True)
    # as whatsmeow delivers them after UnwrapRaw: the content, and the flags on the event
    [(_, flagged)] = events(received(wa.Message(conversation="soon gone"), IsEphemeral=True))
    assert (flagged["type"], flagged["text"], flagged["ephemeral"], flagged["view_once"]) == ("text", "soon gone",
                                                                                               True, False)
    [(_, video)] = events(received(wa.Message(videoMessage=wa.VideoMessage(mimetype="video/mp4")), IsViewOnceV2=True))
    assert (video["type"], video["view_once"]) == ("video", True)
    [(_, plain)] = events(received(wa.Message(conversation="hi")))
    assert (plain["ephemeral"], plain["view_once"]) == (False, False)


def test_received_mentions_are_listed():
    text = wa.ExtendedTextMessage(text="hi @5511888880000", contextInfo=wa.ContextInfo(
        mentionedJID=["5511888880000@s.whatsapp.net"]))
    [(_, data)] = events(received(wa.Message(extendedTextMessage=text), chat=GROUP))
    assert data["mentions"] == ["5511888880000@s.whatsapp.net"] and data["text"] == "hi @5511888880000"


def test_group_participant_changes_one_event_per_action_and_by_whom():
    out = events(GroupInfoEv(JID=GROUP, Sender=ADMIN, Timestamp=1767225600, Join=[ANA, BIA], Promote=[ANA],
                             JoinReason="invite"))
    assert out == [
        ("group.participants", {"group": GROUP_R, "action": "added", "by": person(ADMIN),
                                "participants": [person(ANA), person(BIA)], "reason": "invite",
                                "timestamp": "2026-01-01T00:00:00Z"}),
        ("group.participants", {"group": GROUP_R, "action": "promoted", "by": person(ADMIN),
                                "participants": [person(ANA)], "reason": None, "timestamp": "2026-01-01T00:00:00Z"})]
    [(name, left)] = events(GroupInfoEv(JID=GROUP, Sender=BIA, Leave=[BIA]))
    assert (name, left["action"], left["by"], left["participants"]) == ("group.participants", "removed",
                                                                        person(BIA), [person(BIA)])
    [(_, demoted)] = events(GroupInfoEv(JID=GROUP, Sender=ADMIN, Demote=[ANA]))
    assert demoted["action"] == "demoted"


def test_group_info_changes_name_what_changed_and_the_new_values():
    [(name, data)] = events(GroupInfoEv(JID=GROUP, Sender=ADMIN, Timestamp=1767225600,
                                        Name=GroupName(Name="Team B", NameSetBy=ADMIN),
                                        Topic=GroupTopic(Topic="the new rules"), Announce=GroupAnnounce(IsAnnounce=True),
                                        Locked=GroupLocked(isLocked=False),
                                        Ephemeral=GroupEphemeral(IsEphemeral=True, DisappearingTimer=604800)))
    assert name == "group.update"
    assert data == {"group": GROUP_R, "kind": "changed", "by": person(ADMIN), "timestamp": "2026-01-01T00:00:00Z",
                    "changes": {"subject": "Team B", "description": "the new rules", "announce": True,
                                "locked": False, "ephemeral_seconds": 604800}}
    [(_, removed)] = events(GroupInfoEv(JID=GROUP, Sender=ADMIN, Topic=GroupTopic(TopicDeleted=True)))
    assert removed["changes"] == {"description": None}
    both = events(GroupInfoEv(JID=GROUP, Sender=ADMIN, Name=GroupName(Name="X"), Leave=[BIA]))
    assert [name for name, _ in both] == ["group.participants", "group.update"]


def test_a_contacts_push_name_and_business_name_changes_are_reported_once():
    names = NameTracker()
    assert translate(received(wa.Message(conversation="1"), push_name="Ana"), names=names)[0][1]["event"] == \
        "message.received"  # first sight: the baseline, nothing to report
    assert len(translate(received(wa.Message(conversation="2"), push_name="Ana"), names=names)) == 1
    out = events(received(wa.Message(conversation="3"), push_name="Ana Maria"), names=names)
    assert [name for name, _ in out] == ["contact.updated", "message.received"]
    assert out[0][1] == {"contact": person(ANA), "changed": ["push_name"], "push_name": "Ana Maria",
                         "previous_push_name": "Ana", "business_name": None, "previous_business_name": None,
                         "timestamp": "2026-01-01T00:00:00Z"}
    shop = received(wa.Message(conversation="4"), push_name="Ana Maria")
    shop.Info.VerifiedName.Details.verifiedName = "Ana's Bakery"
    out = events(shop, names=names)
    assert out[0][1]["changed"] == ["business_name"] and out[0][1]["business_name"] == "Ana's Bakery"
    # this account's own messages are not a contact's name
    assert len(events(received(wa.Message(conversation="5"), from_me=True, push_name="Me"), names=names)) == 1
