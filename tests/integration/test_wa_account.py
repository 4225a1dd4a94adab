"""The neonize side of group administration, profile, privacy and the blocklist, offline:
whatsmeow's answers built as the real protobufs and translated to our JSON, our settings as
neonize's own enums, whatsmeow's error texts to codes, pictures checked before any call, and
every driver call made on a real neonize client that never connected (our arguments really
go through neonize's encoding into whatsmeow, whose refusal comes back as a DriverError)."""
from __future__ import annotations

import base64
import uuid

import pytest
from neonize.proto.Neonize_pb2 import JID, Blocklist, GroupParticipantRequest, PrivacySettings
from neonize.utils.enum import BlocklistAction, PrivacySetting, PrivacySettingType

from runner_container import wa_account
from runner_container.drivers.base import DriverError, SessionConfig
from runner_container.drivers.neonize_driver import NeonizeClient, NeonizeDriver

GROUP = "120363041234567890@g.us"
PEER = "5511912345671@s.whatsapp.net"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def jid(user: str, server: str = "s.whatsapp.net") -> JID:
    return JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


def test_privacy_settings_become_our_names_and_values():
    settings = PrivacySettings(LastSeen=PrivacySettings.CONTACTS, Profile=PrivacySettings.ALL,
                               Status=PrivacySettings.CONTACT_BLACKLIST, GroupAdd=PrivacySettings.CONTACTS,
                               ReadReceipts=PrivacySettings.NONE, Online=PrivacySettings.MATCH_LAST_SEEN)
    assert wa_account.privacy_json(settings) == {"last_seen": "contacts", "profile_photo": "all",
                                                 "about": "contacts_blacklist", "groups_add": "contacts",
                                                 "read_receipts": "none"}
    empty = wa_account.privacy_json(PrivacySettings())  # what neonize answers when whatsmeow had none
    assert set(empty.values()) == {None}


def test_privacy_arguments_are_neonize_enums_and_whatsapps_combinations_are_checked():
    assert wa_account.privacy_args("last_seen", "none") == (PrivacySettingType.LAST_SEEN, PrivacySetting.NONE)
    assert wa_account.privacy_args("about", "contacts_blacklist") == (PrivacySettingType.STATUS,
                                                                      PrivacySetting.CONTACTS_BLACKLIST)
    assert wa_account.privacy_args("profile_photo", "all") == (PrivacySettingType.PROFILE, PrivacySetting.ALL)
    assert wa_account.privacy_args("groups_add", "contacts") == (PrivacySettingType.GROUP_ADD,
                                                                 PrivacySetting.CONTACTS)
    assert wa_account.privacy_args("read_receipts", "all") == (PrivacySettingType.READ_RECEIPTS,
                                                               PrivacySetting.ALL)
    for name, value, code in (("groups_add", "none", "bad_privacy_value"),
                              ("read_receipts", "contacts", "bad_privacy_value"), ("online", "all", "bad_privacy_setting")):
        with pytest.raises(DriverError) as refused:
            wa_account.privacy_args(name, value)
        assert refused.value.code == code


def test_blocklist_join_requests_and_invites_translate():
    blocked = Blocklist(DHash="x", JIDs=[jid("5511912345672"), jid("5511912345671"), jid("5511912345671")])
    assert wa_account.blocklist_json(blocked) == ["5511912345671@s.whatsapp.net", "5511912345672@s.whatsapp.net"]
    requests = [GroupParticipantRequest(Participant=jid("5511912345671"), TimeAt=1767225600),
                GroupParticipantRequest(Participant=jid("123456789012345", "lid"), TimeAt=0)]
    assert wa_account.requests_json(requests) == [
        {"jid": PEER, "phone": "5511912345671", "requested_at": "2026-01-01T00:00:00+00:00"},
        {"jid": "123456789012345@lid", "phone": None, "requested_at": None}]
    assert wa_account.blocklist_action("block") is BlocklistAction.BLOCK
    assert wa_account.blocklist_action("unblock") is BlocklistAction.UNBLOCK
    link = wa_account.invite_link("AbCdEfGhIjKlMnOpQrStUv")
    assert link == "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv" and wa_account.invite_link(link) == link
    assert wa_account.invite_code(link) == "AbCdEfGhIjKlMnOpQrStUv"


@pytest.mark.parametrize("text,code", [
    ("failed to join group: that group invite link is not valid: info query returned status 406", "invite_invalid"),
    ("that group invite link has been revoked", "invite_revoked"),
    ("you're not participating in that group", "group_not_found"),
    ("that group does not exist", "group_not_found"),
    ("unauthorized to get group invite link", "not_admin"),
    ("info query returned status 401: not-authorized", "not_admin"),
    ("the given data is not a valid image", "picture_invalid"),
    ("websocket not connected", "not_connected"),
    ("something new", "fallback"),
])
def test_whatsmeow_error_texts_become_codes(text, code):
    assert wa_account.driver_error(Exception(text), "fallback").code == code


def test_pictures_are_jpeg_within_the_limit_and_never_a_url():
    assert wa_account.picture_bytes({"media_base64": base64.b64encode(JPEG).decode()}, None) == JPEG
    assert wa_account.picture_bytes({"media_key": "k"}, lambda key, limit: JPEG) == JPEG
    cases = [({"media_base64": base64.b64encode(b"\x89PNG\r\n").decode()}, None, "picture_not_jpeg"),
             ({"media_base64": base64.b64encode(JPEG + b"\x00" * wa_account.MAX_PICTURE_BYTES).decode()}, None,
              "picture_too_large"),
             ({"media_key": "k"}, None, "media_storage_not_configured"),
             ({"media_url": "http://169.254.169.254/latest"}, None, "picture_missing")]  # a URL is not a source
    for picture, fetch_key, code in cases:
        with pytest.raises(DriverError) as refused:
            wa_account.picture_bytes(picture, fetch_key)
        assert refused.value.code == code


@pytest.fixture
def driver(stack, db):
    return NeonizeDriver(stack.env["DATABASE_URL"], db)


PICTURE = {"media_base64": base64.b64encode(JPEG).decode()}


def _calls(client):
    return {
        "leave_group": lambda: client.leave_group(GROUP),
        "invite_link": lambda: client.group_invite_link(GROUP, False),
        "revoke_invite_link": lambda: client.group_invite_link(GROUP, True),
        "invite_preview": lambda: client.group_invite_preview("AbCdEfGhIjKlMnOpQrStUv"),
        "join_group": lambda: client.join_group("AbCdEfGhIjKlMnOpQrStUv"),
        "set_group_subject": lambda: client.set_group_subject(GROUP, "Team"),
        "set_group_description": lambda: client.set_group_description(GROUP, "Launch plans"),
        "set_group_picture": lambda: client.set_group_picture(GROUP, PICTURE),
        "set_group_settings": lambda: client.set_group_settings(GROUP, True, False),
        "group_requests": lambda: client.group_requests(GROUP),
        "set_push_name": lambda: client.set_push_name("Support"),
        "set_about": lambda: client.set_about("We answer 9-5"),
        "set_profile_picture": lambda: client.set_profile_picture(PICTURE),
        "set_privacy": lambda: client.set_privacy({"last_seen": "contacts", "read_receipts": "none"}),
        "blocklist": lambda: client.blocklist(),
        "block": lambda: client.update_blocklist(PEER, "block"),
        "unblock": lambda: client.update_blocklist(PEER, "unblock"),
    }


def test_without_a_socket_every_call_is_not_connected(driver):
    client = NeonizeClient(driver, SessionConfig("account-offline", None, None), lambda kind, data: None)
    calls = {**_calls(client), "update_group_requests": lambda: client.update_group_requests(GROUP, "approve", [PEER])}
    for name, call in {**calls, "get_privacy": client.get_privacy}.items():
        with pytest.raises(DriverError) as refused:
            call()
        assert refused.value.code == "not_connected", name


def test_a_real_neonize_client_takes_our_arguments_and_its_refusal_is_readable(driver):
    """A neonize client that never logged in: each call encodes our JIDs, enums and bytes into
    neonize's protobufs and reaches whatsmeow, which refuses (no connection, no device).
    SetStatusMessage, UpdateBlocklist and SetPushName would panic on neonize's missing Go client (seen:
    a nil pointer in whatsmeow's sendMexIQ kills the process); the driver asks neonize
    whether it is connected first, so here they are refused as not_connected, and the
    process lives on to run the next call."""
    client = NeonizeClient(driver, SessionConfig(f"account-{uuid.uuid4().hex[:8]}", None, None),
                           lambda kind, data: None)
    client.client = client._build()
    client.socket_up.set()  # pretend the socket is up: whatsmeow itself answers
    codes = {}
    for name, call in _calls(client).items():
        with pytest.raises(DriverError) as refused:
            call()
        codes[name] = (refused.value.code, refused.value.message)
        assert "EncodeError" not in refused.value.message and "missing required" not in refused.value.message
    assert {code for code, _ in codes.values()} <= {"not_connected", "not_logged_in"}, codes
    # neonize answers an empty PrivacySettings when whatsmeow has none: not invented as defaults
    with pytest.raises(DriverError) as no_privacy:
        client.get_privacy()
    assert no_privacy.value.code == "privacy_unavailable"
    # neonize 0.5.2 has no UpdateGroupRequestParticipants: said so, not faked
    with pytest.raises(DriverError) as unsupported:
        client.update_group_requests(GROUP, "approve", [PEER])
    assert unsupported.value.code == "not_supported" and "UpdateGroupRequestParticipants" in unsupported.value.message


def test_a_picture_never_reaches_neonize_as_a_str(driver, monkeypatch):
    """neonize's set_group_photo/set_profile_photo fetch a str argument with an unguarded
    requests.get (or read it as a file): the driver hands them checked bytes only."""
    client = NeonizeClient(driver, SessionConfig(f"account-{uuid.uuid4().hex[:8]}", None, None),
                           lambda kind, data: None)
    seen = []

    class Fake:
        def set_group_photo(self, group, data):
            seen.append(data)
            return "1"

        def set_profile_photo(self, data):
            seen.append(data)
            return "2"

    client.client = Fake()
    client.socket_up.set()
    assert client.set_group_picture(GROUP, PICTURE) == {"group_jid": GROUP, "picture_id": "1"}
    assert client.set_profile_picture(PICTURE) == {"picture_id": "2"}
    assert seen == [JPEG, JPEG] and all(isinstance(data, bytes) for data in seen)
    with pytest.raises(DriverError) as refused:
        client.set_profile_picture({"media_base64": base64.b64encode(b"GIF89a").decode()})
    assert refused.value.code == "picture_not_jpeg" and len(seen) == 2
