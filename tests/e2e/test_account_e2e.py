"""Profile, privacy and the blocklist through the whole pipeline with the emulator (issue 17):
API -> commands row -> SQS FIFO shard -> runner -> emulator driver, asserting what the driver
did and what the API answered; bad input, a session that is not logged in, and another
session's key, per route."""
from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import emulator_activity, module_runner, pair_with_emulator

JPEG = b"\xff\xd8\xff\xe0" + b"\x20" * 512


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "account-e2e") as process:
        yield process


def _call(api, created, method, path, body=None):
    headers = session_headers(created)
    url = f"/sessions/{created['session_id']}{path}"
    if body is None:
        return getattr(api, method)(url, headers=headers)
    return getattr(api, method)(url, headers=headers, body=json.dumps(body))


def _error(response, status, code):
    assert response.status_code == status, response.body
    body = response.json_body
    assert body["code"] == code and body["message"] and body["request_id"], body
    return body


@pytest.fixture
def paired(api, runner, make_session):
    created = make_session(name="profile")
    pair_with_emulator(api, runner, created, "5511999990021", push_name=None)
    return created


def test_a_push_name_set_through_the_api_lets_account_presence_through(api, runner, paired):
    """whatsmeow refuses account presence without a push name; setting one through the API
    is what a number paired before WhatsApp synced its name needs."""
    sid = paired["session_id"]
    _error(_call(api, paired, "post", "/presence?wait=true", {"state": "available"}), 502, "push_name_missing")
    named = _call(api, paired, "put", "/profile/name", {"name": "Acme Support"})
    assert named.status_code == 200, named.body
    assert named.json_body == {"command_id": named.json_body["command_id"], "push_name": "Acme Support"}
    assert _call(api, paired, "post", "/presence?wait=true", {"state": "available"}).status_code == 200
    assert runner.emulator("GET", f"/emulator/sessions/{sid}")[1]["push_name"] == "Acme Support"
    assert emulator_activity(runner, sid, "push_name")[-1]["name"] == "Acme Support"


def test_about_text_and_profile_picture(api, runner, paired):
    sid = paired["session_id"]
    about = _call(api, paired, "put", "/profile/about", {"about": "We answer 9-5, Mon-Fri"})
    assert about.status_code == 200 and about.json_body["about"] == "We answer 9-5, Mon-Fri", about.body
    cleared = _call(api, paired, "put", "/profile/about", {"about": ""})
    assert cleared.status_code == 200 and cleared.json_body["about"] == ""
    assert [a["about"] for a in emulator_activity(runner, sid, "about")] == ["We answer 9-5, Mon-Fri", ""]
    picture = _call(api, paired, "put", "/profile/picture", {"media_base64": base64.b64encode(JPEG).decode()})
    assert picture.status_code == 200, picture.body
    assert picture.json_body["picture_id"] == emulator_activity(runner, sid, "profile_picture")[-1]["picture_id"]


def test_privacy_settings_are_read_and_changed(api, runner, paired):
    sid = paired["session_id"]
    read = _call(api, paired, "get", "/privacy")
    assert read.status_code == 200, read.body
    assert read.json_body["privacy"] == {"last_seen": "all", "profile_photo": "all", "about": "all",
                                         "groups_add": "all", "read_receipts": "all"}
    changed = _call(api, paired, "put", "/privacy", {"last_seen": "contacts", "read_receipts": "none",
                                                     "groups_add": "contacts_blacklist"})
    assert changed.status_code == 200, changed.body
    expected = {"last_seen": "contacts", "profile_photo": "all", "about": "all", "groups_add": "contacts_blacklist",
                "read_receipts": "none"}
    assert changed.json_body["privacy"] == expected
    assert _call(api, paired, "get", "/privacy").json_body["privacy"] == expected
    assert emulator_activity(runner, sid, "privacy")[-1]["settings"] == {"last_seen": "contacts", "read_receipts": "none",
                                                                 "groups_add": "contacts_blacklist"}


def test_block_unblock_and_list(api, runner, paired):
    sid = paired["session_id"]
    assert _call(api, paired, "get", "/blocklist").json_body["blocked"] == []
    first = _call(api, paired, "post", "/blocklist", {"contact": "+55 11 91234-5672", "action": "block"})
    assert first.status_code == 200, first.body
    assert first.json_body["blocked"] == ["5511912345672@s.whatsapp.net"]
    _call(api, paired, "post", "/blocklist", {"contact": "5511912345671@s.whatsapp.net", "action": "block"})
    again = _call(api, paired, "post", "/blocklist", {"contact": "5511912345671", "action": "block"})  # idempotent
    assert again.json_body["blocked"] == ["5511912345671@s.whatsapp.net", "5511912345672@s.whatsapp.net"]
    unblocked = _call(api, paired, "post", "/blocklist", {"contact": "5511912345672", "action": "unblock"})
    assert unblocked.json_body["blocked"] == ["5511912345671@s.whatsapp.net"]
    assert _call(api, paired, "get", "/blocklist").json_body["blocked"] == ["5511912345671@s.whatsapp.net"]
    assert [(a["contact"], a["action"]) for a in emulator_activity(runner, sid, "blocklist")][-1] == (
        "5511912345672@s.whatsapp.net", "unblock")
    # WhatsApp delivers nothing from a blocked contact; the unblocked one gets through again
    status, refused = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                      {"from": "+55 11 91234-5671", "text": "let me in"})
    assert (status, refused["code"]) == (409, "blocked")
    status, delivered = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                        {"from": "5511912345672", "text": "thanks"})
    assert status == 200 and delivered["message_id"]


ROUTES = [
    ("put", "/profile/name", {"name": "Acme"}),
    ("put", "/profile/about", {"about": "hello"}),
    ("put", "/profile/picture", {"media_base64": base64.b64encode(JPEG).decode()}),
    ("get", "/privacy", None),
    ("put", "/privacy", {"last_seen": "none"}),
    ("get", "/blocklist", None),
    ("post", "/blocklist", {"contact": "5511912345671", "action": "block"}),
]


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_every_route_is_409_before_login_and_403_with_another_sessions_key(api, make_session, method, path, body):
    idle = make_session(name="never connected")
    _error(_call(api, idle, method, path, body), 409, "not_connected")
    other = make_session(name="another tenant")
    assert _call(api, {**idle, "api_key": other["api_key"]}, method, path, body).status_code == 403


@pytest.mark.parametrize("method,path,body,status", [
    ("put", "/profile/name", {"name": ""}, 422),
    ("put", "/profile/name", {"name": "n" * 26}, 422),
    ("put", "/profile/name", {"name": "nul\u0000name"}, 422),
    ("put", "/profile/about", {"about": "a" * 140}, 422),
    ("put", "/profile/about", {"about": "bad\u0000about"}, 422),
    ("put", "/profile/picture", {"media_base64": base64.b64encode(b"GIF89a" + b"0" * 64).decode()}, 422),
    ("put", "/profile/picture", {"media_base64": base64.b64encode(b"\xff\xd8\xff" + b"0" * 716800).decode()}, 413),
    ("put", "/profile/picture", {"media_url": "http://127.0.0.1:1/picture.jpg"}, 422),
    ("put", "/privacy", {}, 422),
    ("put", "/privacy", {"groups_add": "none"}, 422),
    ("put", "/privacy", {"read_receipts": "contacts"}, 422),
    ("put", "/privacy", {"online": "all"}, 422),
    ("post", "/blocklist", {"contact": "120363041234567890@g.us", "action": "block"}, 422),
    ("post", "/blocklist", {"contact": "not a number", "action": "block"}, 422),
    ("post", "/blocklist", {"contact": "5511912345671", "action": "ban"}, 422),
    ("post", "/blocklist", {"contact": "5511912345671\u0000", "action": "block"}, 422),
])
def test_bad_input_is_a_4xx_json_naming_the_problem(api, make_session, method, path, body, status):
    """Checked before the login: even an idle session gets the 4xx, and nothing is queued."""
    created = make_session(name="bad input")
    error = _error(_call(api, created, method, path, body), status,
                   "picture_too_large" if status == 413 else "validation_failed")
    if status == 422:
        assert error["details"], error


def _upload(api, created, data: bytes, mime_type: str) -> str:
    import requests

    upload = _call(api, created, "post", "/media/upload-url", {"mime_type": mime_type, "size": len(data)})
    assert upload.status_code == 201, upload.body
    put = requests.put(upload.json_body["upload_url"], data=data, headers=upload.json_body["headers"], timeout=10)
    assert put.status_code == 200
    return upload.json_body["media_key"]


def test_a_profile_picture_by_media_key_is_read_from_the_bucket_and_checked_by_the_runner(api, runner, paired):
    """The runner reads the uploaded object (the emulator's picture id is derived from the
    bytes' sha256, so the same id means the same bytes) and refuses a non-JPEG it reads."""
    import hashlib

    key = _upload(api, paired, JPEG, "image/jpeg")
    done = _call(api, paired, "put", "/profile/picture", {"media_key": key})
    assert done.status_code == 200, done.body
    assert done.json_body["picture_id"] == str(int(hashlib.sha256(JPEG).hexdigest()[:12], 16))
    png = _upload(api, paired, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/jpeg")  # a liar's mime type
    _error(_call(api, paired, "put", "/profile/picture", {"media_key": png}), 502, "picture_not_jpeg")
