"""The driver contract, run against both drivers (`runner_container/drivers/base.py`):
every method, its success shape, its refusals and error codes, the events it emits.

The emulator runs whole. neonize runs for real as far as it can without WhatsApp's
servers (there is no route to them from these machines): a client that never connected,
dials through loopback proxies (refused, wrong credentials, a live pproxy whose upstream
is a dead loopback port), a device seeded in whatsmeow's own tables and restored by JID,
and whatsmeow's own answers to requests on a socket that never logged in. What needs a
logged-in socket (a QR, a pairing code, a sent message, group answers) is named in each
test as not possible offline, and the test asserts the offline failure mode instead.

Coverage (method x driver; "real": the driver does it; "offline-real": the real code
path up to whatsmeow's own answer without WhatsApp; "not offline": needs WhatsApp):

| method              | emulator | neonize                                                        |
|---------------------|----------|----------------------------------------------------------------|
| connect (new)       | real: qr | offline-real: dial through proxy, dial_failed; qr not offline   |
| connect (restore)   | real     | offline-real: stored JID loaded, dial_failed; login not offline |
| connect via proxy   | real     | offline-real: tunnel logged by pproxy, credentials, refusals   |
| disconnect          | real     | offline-real                                                   |
| logout              | real     | offline-real: local forget; logout_incomplete on whatsmeow's no |
| pair_phone          | real     | offline-real: refusals; a code not offline                      |
| send                | real     | offline-real: refusals (not_connected, not_logged_in)           |
| mark_read ... update_participants | real | offline-real: refusals (tests/integration/test_wa_chats.py too)  |
| send_presence       | real     | offline-real: push_name_missing from whatsmeow itself          |
| group admin, profile, privacy, blocklist | real | offline-real: refusals; join request approval not_supported (tests/integration/test_wa_account.py too) |
| has_device / forget_device | real | real (whatsmeow_device rows)                               |
"""
from __future__ import annotations

import pytest

from runner_container.drivers.base import Driver, DriverError, SessionClient
from tests.integration.drivers.kits import EmulatorKit, NeonizeKit, closed_proxy
from tests.support.pproxy_server import pproxy

pytestmark = pytest.mark.slow

PEER = "5511912345671@s.whatsapp.net"
NOT_ON_WHATSAPP = "5511912345670@s.whatsapp.net"  # the emulator's rule: a number ending in 0
GROUP = "120363041234567890@g.us"
DIAL_FAILED = "failed to dial whatsapp web websocket"


@pytest.fixture(params=["emulator", "neonize"])
def kit(request, stack, db):
    instance = EmulatorKit(db) if request.param == "emulator" else NeonizeKit(stack.env["DATABASE_URL"], db)
    yield instance
    instance.close()


@pytest.fixture
def sid(make_session):
    return make_session(name="contract")["session_id"]


def _requests(client):
    """Every request a session makes once connected, with arguments the API would pass."""
    return {
        "send": lambda: client.send({"to": "5511912345671", "type": "text", "text": "hi"}),
        "mark_read": lambda: client.mark_read(PEER, ["3EB0A"], None),
        "account_presence": lambda: client.send_presence("available", None),
        "chat_presence": lambda: client.send_presence("composing", PEER),
        "check_contacts": lambda: client.check_contacts(["5511912345671"]),
        "list_groups": lambda: client.list_groups(),
        "group_info": lambda: client.group_info(GROUP),
        "create_group": lambda: client.create_group("Team", [PEER]),
        "update_participants": lambda: client.update_participants(GROUP, "add", [PEER]),
        "contact_profile": lambda: client.contact_profile(PEER),
        "reject_call": lambda: client.reject_call(PEER, "CALL1234ABCD"),
        **_account_requests(client),
    }


JPEG = {"media_base64": "/9j/4AAQSkZJRgABAQ=="}  # a JPEG's first bytes, base64


def _account_requests(client):
    """Group administration, profile, privacy and blocklist (runner_container/drivers/account_base.py)."""
    return {
        "leave_group": lambda: client.leave_group(GROUP),
        "group_invite_link": lambda: client.group_invite_link(GROUP, False),
        "group_invite_preview": lambda: client.group_invite_preview("AbCdEfGhIjKlMnOpQrStUv"),
        "join_group": lambda: client.join_group("AbCdEfGhIjKlMnOpQrStUv"),
        "set_group_subject": lambda: client.set_group_subject(GROUP, "Team"),
        "set_group_description": lambda: client.set_group_description(GROUP, "Plans"),
        "set_group_picture": lambda: client.set_group_picture(GROUP, JPEG),
        "set_group_settings": lambda: client.set_group_settings(GROUP, True, None),
        "group_requests": lambda: client.group_requests(GROUP),
        "update_group_requests": lambda: client.update_group_requests(GROUP, "approve", [PEER]),
        "set_push_name": lambda: client.set_push_name("Support"),
        "set_about": lambda: client.set_about("Hi"),
        "set_profile_picture": lambda: client.set_profile_picture(JPEG),
        "get_privacy": lambda: client.get_privacy(),
        "set_privacy": lambda: client.set_privacy({"last_seen": "none"}),
        "blocklist": lambda: client.blocklist(),
        "update_blocklist": lambda: client.update_blocklist(PEER, "block"),
    }


def _refusal(call) -> DriverError:
    with pytest.raises(DriverError) as refused:
        call()
    assert refused.value.code and refused.value.code == refused.value.code.lower()  # snake_case, for last_error
    return refused.value


# -- the interface ----------------------------------------------------------------------
def test_every_method_of_the_interface_is_implemented(kit):
    client_type = type(kit.client("contract-impl")[0])
    optional = ["mark_read", "send_presence", "check_contacts", "list_groups", "group_info", "create_group",
                "update_participants", "reject_call", "contact_profile", *_account_requests(None)]
    for name in ["connect", "disconnect", "logout", "pair_phone", "send", *optional]:
        assert getattr(client_type, name) is not getattr(SessionClient, name), f"{kit.name} lacks {name}"
    for name in ["has_device", "forget_device"]:
        assert getattr(type(kit.driver), name) is not getattr(Driver, name), f"{kit.name} lacks {name}"


# -- before connect ---------------------------------------------------------------------
def test_before_connect_every_request_is_refused_as_not_connected(kit, sid):
    client, recorder = kit.client(sid)
    codes = {name: _refusal(call).code for name, call in _requests(client).items()}
    codes["pair_phone"] = _refusal(lambda: client.pair_phone("5511999990000", True, 0.2)).code
    assert set(codes.values()) == {"not_connected"}, codes
    assert recorder.events == []  # a refusal emits nothing


def test_disconnect_and_logout_of_a_client_that_never_connected_are_quiet(kit, sid):
    jid = kit.store_device(sid)
    client, recorder = kit.client(sid, jid=jid)
    client.disconnect()
    assert kit.driver.has_device(sid, jid)  # disconnect keeps the device
    client.logout()  # nothing to tell WhatsApp: the device is forgotten locally, no error
    assert not kit.driver.has_device(sid, jid)
    assert recorder.events == []


# -- devices ----------------------------------------------------------------------------
def test_has_device_and_forget_device_on_the_real_device_store(kit, sid):
    jid = kit.store_device(sid)
    assert kit.driver.has_device(sid, jid) is True
    kit.driver.forget_device(sid, None)  # no JID known: nothing to forget (neonize), or by session (emulator)
    if kit.name == "neonize":
        assert kit.driver.has_device(sid, jid) is True
    kit.driver.forget_device(sid, jid)
    assert kit.driver.has_device(sid, jid) is False
    kit.driver.forget_device(sid, jid)  # twice: still quiet


def test_restore_from_a_stored_device_asks_for_no_qr(kit, sid):
    """The failover/restart/proxy-change path: the client is built with the stored JID.
    neonize: whatsmeow loads the seeded device row (an unknown JID would panic the
    process, which is why the runner asks has_device first); logging in needs WhatsApp
    (not possible offline), so the dial fails through a refusing proxy, and no QR appears."""
    jid = kit.store_device(sid)
    assert kit.driver.has_device(sid, jid)
    proxy = None if kit.reaches_whatsapp else closed_proxy()
    client, recorder = kit.client(sid, jid=jid, proxy=proxy)
    client.connect()
    if kit.reaches_whatsapp:
        assert recorder.wait("connected") == {"jid": jid}
    else:
        failed = recorder.wait("retryable")
        assert failed["code"] == "dial_failed" and failed["message"].startswith(DIAL_FAILED)
    assert "qr" not in recorder.kinds()
    assert kit.driver.has_device(sid, jid)  # a failed dial keeps the device
    client.disconnect()


# -- connecting through proxies -----------------------------------------------------------
def test_a_proxy_that_refuses_fails_the_dial_as_retryable_dial_failed(kit, sid):
    client, recorder = kit.client(sid, proxy=closed_proxy())
    client.connect()  # returns at once: the dial runs on the client's thread
    failed = recorder.wait("retryable")
    assert failed["code"] == "dial_failed" and failed["message"].startswith(DIAL_FAILED), failed
    assert recorder.kinds() == ["retryable"]  # no QR, no connected


def test_a_proxy_that_rejects_the_credentials_fails_the_dial_before_any_tunnel(kit, sid, tmp_path):
    with pproxy(tmp_path, "socks5", "zuser:zsecret", dead_upstream=not kit.reaches_whatsapp) as proxy:
        client, recorder = kit.client(sid, proxy=proxy.url(password="wrong"))
        client.connect()
        failed = recorder.wait("retryable")
        assert failed["code"] == "dial_failed" and "wrong" not in failed["message"]
        assert proxy.tunnels() == []


def test_a_live_proxy_carries_the_dial_with_its_credentials(kit, sid, tmp_path):
    """The emulator's "WhatsApp" is its own listener: the tunnel ends there and a new
    device gets a QR of whatsmeow's shape. neonize's tunnel goes to web.whatsapp.com:443
    (pproxy sends it on to a dead loopback port): the QR needs WhatsApp, not possible
    offline, so the dial fails after the proxy carried it."""
    with pproxy(tmp_path, "socks5", "zuser:zsecret", dead_upstream=not kit.reaches_whatsapp) as proxy:
        client, recorder = kit.client(sid, proxy=proxy.url())
        client.connect()
        if kit.reaches_whatsapp:
            qr = recorder.wait("qr")
            ref, noise, identity, adv = qr["code"].split(",")
            assert ref.startswith("2@") and noise and identity and adv
            assert proxy.tunnels() == [f"127.0.0.1:{kit.driver.port}"]
        else:
            failed = recorder.wait("retryable")
            assert failed["code"] == "dial_failed"
            assert proxy.tunnels() and set(proxy.tunnels()) == {"web.whatsapp.com:443"}
            assert "qr" not in recorder.kinds()
        client.disconnect()


# -- requests on an open socket -----------------------------------------------------------
def _open_socket(kit, sid, *, push_name="Contract"):
    """The emulator: a restored, connected session. neonize: a socket cannot open offline;
    the client dials (refused), then `socket_up` is set by hand, as its QR or connected
    event sets it, so that whatsmeow itself answers each request (no device, no socket)."""
    if kit.reaches_whatsapp:
        jid = kit.store_device(sid, push_name=push_name)
        client, recorder = kit.client(sid, jid=jid)
        client.connect()
        recorder.wait("connected")
        return client, recorder
    client, recorder = kit.client(sid, proxy=closed_proxy())
    client.connect()
    recorder.wait("retryable")
    client.socket_up.set()
    return client, recorder


def test_send_answers_an_id_and_a_timestamp_or_a_coded_refusal(kit, sid):
    client, _ = _open_socket(kit, sid)
    payload = {"to": "5511912345671", "type": "text", "text": "hello"}
    if kit.reaches_whatsapp:
        sent = client.send(payload)
        assert set(sent) == {"message_id", "timestamp"} and sent["message_id"] and sent["timestamp"] > 0
        refused = _refusal(lambda: client.send({"to": "5511912345671", "type": "fax"}))
        assert refused.code == "unsupported_type"
    else:  # not possible offline: a send needs a logged-in device; whatsmeow refuses, readably
        refused = _refusal(lambda: client.send(payload))
        assert refused.code == "not_logged_in", refused.message
        assert _refusal(lambda: client.send({"to": "5511912345671", "type": "fax"})).code == "unsupported_type"


def test_account_presence_needs_a_push_name(kit, sid):
    """whatsmeow refuses account presence without the push name (ErrNoPushName); the
    emulator refuses the same way. neonize's store has none before WhatsApp syncs it."""
    client, _ = _open_socket(kit, sid, push_name=None)
    assert _refusal(lambda: client.send_presence("available", None)).code == "push_name_missing"


def test_pair_phone_gives_a_code_or_is_refused(kit, sid):
    if kit.reaches_whatsapp:
        client, recorder = kit.client(sid)
        client.connect()
        recorder.wait("qr")
        code = client.pair_phone("5511999990000", True, 5)
        assert len(code) == 9 and code[4] == "-"
    else:  # not possible offline: WhatsApp issues the code; whatsmeow refuses without its socket
        client, _ = _open_socket(kit, sid)
        refused = _refusal(lambda: client.pair_phone("5511999990000", True, 1))
        assert refused.code == "pair_phone_failed" and "websocket not connected" in refused.message


def test_logout_that_whatsapp_does_not_confirm_forgets_locally_and_says_so(kit, sid):
    jid = kit.store_device(sid)
    if kit.reaches_whatsapp:
        client, recorder = kit.client(sid, jid=jid)
        client.connect()
        recorder.wait("connected")
        kit.driver.find(sid).unreachable = True  # WhatsApp stops answering (emulator control)
    else:  # whatsmeow's Logout on a socket that never logged in fails: the same branch of the driver
        client, recorder = kit.client(sid, jid=jid, proxy=closed_proxy())
        client.connect()
        recorder.wait("retryable")
        client.socket_up.set()
    refused = _refusal(client.logout)
    assert refused.code == "logout_incomplete" and "removed locally" in refused.message
    assert not kit.driver.has_device(sid, jid)


def test_chats_contacts_and_groups_answer_their_shapes_or_refuse(kit, sid):
    client, _ = _open_socket(kit, sid)
    if not kit.reaches_whatsapp:  # not possible offline: whatsmeow answers each without a socket or device
        codes = {name: _refusal(call).code for name, call in _requests(client).items()
                 if name not in ("send", "account_presence", *_account_requests(None))}
        assert set(codes.values()) <= {"not_connected", "not_logged_in"}, codes
        return
    [contact] = client.check_contacts(["5511912345671"])
    assert contact == {"phone": "5511912345671", "on_whatsapp": True, "jid": PEER, "verified_name": None}
    profile = client.contact_profile(PEER)
    assert set(profile) == {"jid", "phone", "on_whatsapp", "about", "picture_url", "business_name"}
    assert profile["jid"] == PEER and profile["on_whatsapp"] is True
    group = client.create_group("Team", [PEER, NOT_ON_WHATSAPP])
    assert set(group) == {"jid", "name", "topic", "owner", "participants_count", "created_at", "is_announce",
                          "is_locked", "participants"}
    assert NOT_ON_WHATSAPP not in [p["jid"] for p in group["participants"]]  # as wa_chats.group_json leaves it out
    assert client.group_info(group["jid"]) == group
    assert [g["jid"] for g in client.list_groups()] == [group["jid"]]
    changes = client.update_participants(group["jid"], "add", [PEER, NOT_ON_WHATSAPP])
    assert [(c["jid"], c["ok"], c["error"]) for c in changes] == [(PEER, False, "already_member"),
                                                                  (NOT_ON_WHATSAPP, False, "not_on_whatsapp")]
    assert _refusal(lambda: client.group_info(GROUP)).code == "group_not_found"
    client.mark_read(PEER, ["3EB0A"], None)
    client.send_presence("composing", PEER)
    client.send_presence("available", None)


def test_group_admin_profile_and_blocklist_answer_their_shapes_or_refuse(kit, sid):
    client, _ = _open_socket(kit, sid)
    if not kit.reaches_whatsapp:  # not possible offline: whatsmeow (or neonize) refuses each
        codes = {name: _refusal(call).code for name, call in _account_requests(client).items()}
        assert codes.pop("update_group_requests") == "not_supported"  # neonize 0.5.2 lacks the call
        assert codes.pop("get_privacy") == "privacy_unavailable"  # neonize answers empty settings
        assert set(codes.values()) <= {"not_connected", "not_logged_in"}, codes
        return
    group = client.create_group("Team", [PEER])
    link = client.group_invite_link(group["jid"], False)
    assert set(link) == {"group_jid", "link", "code"} and link["link"].endswith(link["code"])
    assert client.group_invite_preview(link["code"])["group"]["jid"] == group["jid"]
    assert _refusal(lambda: client.join_group(link["link"])).code == "already_member"
    assert _refusal(lambda: client.join_group("AAAAAAAAAAAAAAAAAAAAAA")).code == "invite_invalid"
    assert client.set_group_subject(group["jid"], "Renamed") == {"group_jid": group["jid"], "subject": "Renamed"}
    assert client.set_group_settings(group["jid"], True, None) == {"group_jid": group["jid"], "announce": True,
                                                                  "locked": None}
    assert client.group_info(group["jid"])["is_announce"] is True
    assert set(client.set_group_picture(group["jid"], JPEG)) == {"group_jid", "picture_id"}
    assert _refusal(lambda: client.set_profile_picture({"media_base64": "R0lGODlh"})).code == "picture_not_jpeg"
    assert client.group_requests(group["jid"]) == {"group_jid": group["jid"], "requests": []}
    assert client.update_group_requests(group["jid"], "approve", [PEER])["participants"][0]["error"] == "no_request"
    assert client.set_push_name("Support") == {"push_name": "Support"}
    assert client.get_privacy()["privacy"]["last_seen"] == "all"
    assert client.set_privacy({"last_seen": "none"})["privacy"]["last_seen"] == "none"
    assert _refusal(lambda: client.set_privacy({"groups_add": "none"})).code == "bad_privacy_value"
    assert client.update_blocklist(PEER, "block") == {"blocked": [PEER]} == client.blocklist()
    assert client.leave_group(group["jid"]) == {"group_jid": group["jid"], "left": True}
    assert _refusal(lambda: client.group_info(group["jid"])).code == "group_not_found"
