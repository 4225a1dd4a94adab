"""The neonize side of chats, contacts and groups, offline: whatsmeow's answers built by
hand as the real protobufs and translated to our JSON, presence/participant arguments as
neonize's own enums, error texts to codes, and every driver call made on a real neonize
client that never connected (so protobuf encoding of our arguments really runs, and
whatsmeow's own refusal comes back as a readable DriverError)."""
from __future__ import annotations

import uuid

import pytest
from neonize.proto.Neonize_pb2 import (JID, GroupAnnounce, GroupInfo, GroupLocked, GroupName, GroupParticipant,
                                       GroupParticipantAddRequest, GroupTopic, IsOnWhatsAppResponse, VerifiedName)
from neonize.proto.waVnameCert.WAWebProtobufsVnameCert_pb2 import VerifiedNameCertificate
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ParticipantChange, Presence

from runner_container import wa_chats
from runner_container.drivers.base import DriverError, SessionConfig
from runner_container.drivers.neonize_driver import NeonizeClient, NeonizeDriver


def jid(user: str, server: str = "s.whatsapp.net") -> JID:
    return JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


GROUP = jid("120363041234567890", "g.us")


def test_group_info_becomes_our_group_json():
    info = GroupInfo(
        JID=GROUP, OwnerJID=jid("123456789012345", "lid"), OwnerPN=jid("5511999990000"),
        GroupName=GroupName(Name="Team"), GroupTopic=GroupTopic(Topic="Launch plans"),
        GroupLocked=GroupLocked(isLocked=True), GroupAnnounce=GroupAnnounce(IsAnnounce=False),
        GroupCreated=1767225600,
        Participants=[
            GroupParticipant(JID=jid("123456789012345", "lid"), PhoneNumber=jid("5511999990000"), IsAdmin=True,
                             IsSuperAdmin=True),
            GroupParticipant(JID=jid("5511912345671"), IsAdmin=True),
            GroupParticipant(JID=jid("987654321098765", "lid")),  # a LID whose phone WhatsApp hides
        ])
    assert wa_chats.group_json(info) == {
        "jid": "120363041234567890@g.us", "name": "Team", "topic": "Launch plans",
        "owner": "5511999990000@s.whatsapp.net",  # the phone JID, not the owner's LID
        "participants_count": 3, "created_at": "2026-01-01T00:00:00+00:00", "is_announce": False,
        "is_locked": True,
        "participants": [
            {"jid": "123456789012345@lid", "phone": "5511999990000", "is_admin": True, "is_super_admin": True},
            {"jid": "5511912345671@s.whatsapp.net", "phone": "5511912345671", "is_admin": True,
             "is_super_admin": False},
            {"jid": "987654321098765@lid", "phone": None, "is_admin": False, "is_super_admin": False},
        ],
    }


def test_participants_whatsapp_did_not_add_are_not_members():
    """CreateGroup's answer lists every requested participant; one that is not on WhatsApp
    (404) or asks for an invite (403 + AddRequest) carries an Error and is left out, as the
    emulator leaves a number that is not on WhatsApp out of a new group."""
    info = GroupInfo(JID=GROUP, OwnerJID=jid("5511999990002"), GroupName=GroupName(Name="Team"), Participants=[
        GroupParticipant(JID=jid("5511999990002"), IsAdmin=True, IsSuperAdmin=True),
        GroupParticipant(JID=jid("5511912345671")),
        GroupParticipant(JID=jid("5511912345670"), Error=404),
        GroupParticipant(JID=jid("5511912345679"), Error=403,
                         AddRequest=GroupParticipantAddRequest(Code="abc", Expiration=1767225600)),
    ])
    out = wa_chats.group_json(info)
    assert [p["jid"] for p in out["participants"]] == ["5511999990002@s.whatsapp.net",
                                                       "5511912345671@s.whatsapp.net"]
    assert out["participants_count"] == 2


def test_a_sparse_group_info_has_safe_defaults():
    out = wa_chats.group_json(GroupInfo(JID=GROUP, OwnerJID=jid("5511999990000")))
    assert out["name"] == "" and out["topic"] is None and out["created_at"] is None
    assert out["owner"] == "5511999990000@s.whatsapp.net" and out["participants"] == []
    assert out["is_announce"] is False and out["is_locked"] is False


def test_is_on_whatsapp_answers_map_back_to_the_numbers_asked():
    certificate = VerifiedNameCertificate.Details(verifiedName="Acme Ltd")
    answers = [
        IsOnWhatsAppResponse(Query="+5511912345671", JID=jid("5511912345671"), IsIn=True,
                             VerifiedName=VerifiedName(Details=certificate)),
        IsOnWhatsAppResponse(Query="+14155550123", JID=jid("14155550123"), IsIn=False),
    ]
    assert wa_chats.contacts_json(["14155550123", "5511912345671", "5511900000000"], answers) == [
        {"phone": "14155550123", "on_whatsapp": False, "jid": None, "verified_name": None},
        {"phone": "5511912345671", "on_whatsapp": True, "jid": "5511912345671@s.whatsapp.net",
         "verified_name": "Acme Ltd"},
        {"phone": "5511900000000", "on_whatsapp": False, "jid": None, "verified_name": None},  # no answer
    ]


def test_participant_changes_give_one_result_per_requested_jid():
    answered = [
        GroupParticipant(JID=jid("5511912345671"), Error=0),
        GroupParticipant(JID=jid("5511912345672"), Error=409),
        GroupParticipant(JID=jid("5511912345673"), Error=403,
                         AddRequest=GroupParticipantAddRequest(Code="AbCdEf", Expiration=1767225600)),
        GroupParticipant(JID=jid("123456789012345", "lid"), PhoneNumber=jid("5511912345674"), Error=0),
        GroupParticipant(JID=jid("5511912345675"), Error=404),
    ]
    asked = ["5511912345671@s.whatsapp.net", "5511912345672@s.whatsapp.net", "5511912345673@s.whatsapp.net",
             "5511912345674@s.whatsapp.net", "5511912345675@s.whatsapp.net", "5511912345676@s.whatsapp.net"]
    results = wa_chats.participant_results("add", asked, answered)
    assert [(r["phone"], r["ok"], r["error"]) for r in results] == [
        ("5511912345671", True, None), ("5511912345672", False, "already_member"),
        ("5511912345673", False, "invite_required"), ("5511912345674", True, None),  # matched by its phone
        ("5511912345675", False, "not_on_whatsapp"), ("5511912345676", False, "no_answer")]
    removed = wa_chats.participant_results("remove", asked[4:5], answered)
    assert removed[0]["error"] == "not_member"
    assert wa_chats.participant_error(419, "add") == "group_full"
    assert wa_chats.participant_error(499, "promote") == "error_499"


def test_presence_states_become_neonize_enums():
    assert wa_chats.presence_args("available") == ("account", (Presence.AVAILABLE,))
    assert wa_chats.presence_args("unavailable") == ("account", (Presence.UNAVAILABLE,))
    assert wa_chats.presence_args("composing") == (
        "chat", (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT))
    assert wa_chats.presence_args("recording") == (
        "chat", (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO))
    assert wa_chats.presence_args("paused") == (
        "chat", (ChatPresence.CHAT_PRESENCE_PAUSED, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT))
    assert [wa_chats.participant_change(a) for a in ("add", "remove", "promote", "demote")] == [
        ParticipantChange.ADD, ParticipantChange.REMOVE, ParticipantChange.PROMOTE, ParticipantChange.DEMOTE]
    with pytest.raises(DriverError) as bad:
        wa_chats.participant_change("kick")
    assert bad.value.code == "bad_action"


@pytest.mark.parametrize("text,code", [
    ("client is nil", "not_connected"),
    ("failed to send usync query: websocket not connected", "not_connected"),
    ("failed to get privacy token for participant 1@s.whatsapp.net: the store doesn't contain a device JID",
     "not_logged_in"),
    ("info query returned status 404: item-not-found", "group_not_found"),
    ("info query returned status 401: not-authorized", "not_admin"),
    ("can't send presence without PushName set", "push_name_missing"),
    ("info query timed out", "whatsapp_timeout"),
    ("something new", "fallback"),
])
def test_whatsmeow_error_texts_become_codes(text, code):
    assert wa_chats.error_code(text, "fallback") == code


@pytest.fixture
def driver(stack, db):
    return NeonizeDriver(stack.env["DATABASE_URL"], db)


def _calls(client):
    return {
        "mark_read": lambda: client.mark_read("120363041234567890@g.us", ["3EB0A", "3EB0B"],
                                              "5511912345671@s.whatsapp.net"),
        "mark_read_direct": lambda: client.mark_read("5511912345671@s.whatsapp.net", ["3EB0A"], None),
        "presence": lambda: client.send_presence("available", None),
        "chat_presence": lambda: client.send_presence("recording", "5511912345671@s.whatsapp.net"),
        "check_contacts": lambda: client.check_contacts(["5511912345671", "14155550123"]),
        "list_groups": lambda: client.list_groups(),
        "group_info": lambda: client.group_info("120363041234567890@g.us"),
        "create_group": lambda: client.create_group("Team", ["5511912345671@s.whatsapp.net"]),
        "update_participants": lambda: client.update_participants("120363041234567890@g.us", "promote",
                                                                  ["5511912345671@s.whatsapp.net"]),
    }


def test_without_a_socket_every_call_is_not_connected(driver):
    client = NeonizeClient(driver, SessionConfig("chats-offline", None, None), lambda kind, data: None)
    for name, call in _calls(client).items():
        with pytest.raises(DriverError) as refused:
            call()
        assert refused.value.code == "not_connected", name


def test_a_real_neonize_client_takes_our_arguments_and_its_refusal_is_readable(driver):
    """A neonize client that never logged in: each call encodes our JIDs and enums into
    neonize's protobufs (a missing required field would raise EncodeError here) and reaches
    whatsmeow, which refuses because there is no connection or no device."""
    client = NeonizeClient(driver, SessionConfig(f"chats-{uuid.uuid4().hex[:8]}", None, None),
                           lambda kind, data: None)
    client.client = client._build()
    client.socket_up.set()  # pretend the socket is up: whatsmeow itself answers
    codes = {}
    for name, call in _calls(client).items():
        with pytest.raises(DriverError) as refused:
            call()
        codes[name] = refused.value.code
        assert "EncodeError" not in refused.value.message and "missing required" not in refused.value.message
    assert set(codes.values()) <= {"not_connected", "not_logged_in"}, codes
