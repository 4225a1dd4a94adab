"""POST /sessions/{id}/messages: validation, refusal when not connected, idempotency, media guards."""
from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from chalicelib.bootstrap import Container, reset_container
from tests.conftest import session_headers

TO = "+55 11 91234-5678"


def _send(api, created, body, query=""):
    return api.post(f"/sessions/{created['session_id']}/messages{query}", headers=session_headers(created),
                    body=json.dumps(body))


def _commands(db, session_id):
    with db.connection() as conn:
        return conn.execute("SELECT * FROM commands WHERE session_id = %s AND type = 'send_message'",
                            (session_id,)).fetchall()


def test_a_text_is_queued_as_a_command_with_the_recipient_normalised(api, online, db):
    response = _send(api, online, {"to": TO, "type": "text", "text": "hello"})
    assert response.status_code == 202
    assert response.json_body["status"] == "queued"
    [row] = _commands(db, online["session_id"])
    assert str(row["id"]) == response.json_body["command_id"]
    assert row["payload"] == {"to": "5511912345678@s.whatsapp.net", "type": "text", "text": "hello",
                              "link_preview": False}
    state = api.get(f"/sessions/{online['session_id']}/commands/{row['id']}", headers=session_headers(online))
    assert state.status_code == 200 and state.json_body["type"] == "send_message"


def test_the_same_idempotency_key_sends_once(api, online, db):
    body = {"to": TO, "type": "text", "text": "once", "idempotency_key": "order-42"}
    first = _send(api, online, body).json_body
    second = _send(api, online, body).json_body
    assert first["command_id"] == second["command_id"]
    assert len(_commands(db, online["session_id"])) == 1


def test_sending_on_a_session_that_is_not_paired_is_409(api, make_session):
    created = make_session()
    response = _send(api, created, {"to": TO, "type": "text", "text": "x"})
    assert response.status_code == 409 and response.json_body["code"] == "not_connected"


@pytest.mark.parametrize("body,field", [
    ({"to": "12", "type": "text", "text": "x"}, "to"),
    ({"to": "+999 1234", "type": "text", "text": "x"}, "to"),
    ({"to": "abc@example.com", "type": "text", "text": "x"}, "to"),
    ({"to": TO, "type": "text", "text": ""}, "text"),
    ({"to": TO, "type": "image"}, "body"),
    ({"to": TO, "type": "image", "media_base64": "not base64!!"}, "media_base64"),
    ({"to": TO, "type": "document", "media_url": "file:///etc/passwd"}, "media_url"),
    ({"to": TO, "type": "location", "latitude": 91, "longitude": 0}, "latitude"),
    ({"to": TO, "type": "contact", "vcard": "just a name"}, "vcard"),
    ({"to": TO, "type": "reaction", "emoji": "x"}, "message_id"),
    ({"to": TO, "type": "poll", "question": "q", "options": ["only one"]}, "options"),
    ({"to": TO, "type": "fax", "text": "x"}, "body"),
    ({"to": TO, "type": "text", "text": "x", "colour": "red"}, "colour"),
    ({"to": TO, "type": "text", "text": "x", "mentions": ["120363000000000000@g.us"]}, "mentions"),
    ({"to": TO, "type": "text", "text": "x", "mentions": ["12"]}, "mentions"),
    ({"to": TO, "type": "location", "latitude": 1, "longitude": 1, "mentions": [TO]}, "mentions"),
])
def test_bad_messages_are_422_naming_the_field(api, online, body, field):
    response = _send(api, online, body)
    assert response.status_code == 422, response.body
    assert field in [d["field"] for d in response.json_body["details"]], response.json_body


def test_mentions_are_normalised_and_mention_all_needs_a_group(api, online, db):
    response = _send(api, online, {"to": "120363000000000000@g.us", "type": "text", "text": "hi",
                                   "mentions": ["+55 11 91234-5678", "5511912345678@s.whatsapp.net",
                                                "123456789012345@lid"], "mention_all": True})
    assert response.status_code == 202, response.body
    [row] = _commands(db, online["session_id"])
    assert row["payload"]["mentions"] == ["5511912345678@s.whatsapp.net", "123456789012345@lid"]
    assert row["payload"]["mention_all"] is True
    refused = _send(api, online, {"to": TO, "type": "text", "text": "hi", "mention_all": True})
    assert refused.status_code == 422 and "group" in refused.json_body["message"] + str(refused.json_body)


def test_every_type_is_accepted(api, online, db):
    media = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 100).decode()
    bodies = [
        {"type": "text", "text": "hi", "link_preview": True, "quoted_message_id": "3EB0"},
        {"type": "image", "media_base64": media, "caption": "c", "view_once": True},
        {"type": "video", "media_url": "http://127.0.0.1:9/v.mp4"},
        {"type": "audio", "media_base64": media, "voice_note": True},
        {"type": "document", "media_base64": media, "filename": "a.pdf", "mime_type": "application/pdf"},
        {"type": "sticker", "media_base64": media},
        {"type": "location", "latitude": -23.5, "longitude": -46.6, "name": "Office"},
        {"type": "contact", "vcard": "BEGIN:VCARD\nFN:Ann\nEND:VCARD"},
        {"type": "reaction", "message_id": "3EB0", "emoji": "👍"},
        {"type": "edit", "message_id": "3EB0", "text": "fixed"},
        {"type": "revoke", "message_id": "3EB0"},
        {"type": "poll", "question": "Lunch?", "options": ["a", "b", "c"], "selectable_count": 2},
    ]
    for body in bodies:
        response = _send(api, online, {"to": "120363041234567890@g.us", **body})
        assert response.status_code == 202, (body["type"], response.body)
    types = sorted(row["payload"]["type"] for row in _commands(db, online["session_id"]))
    assert types == sorted(b["type"] for b in bodies)


def test_inline_media_over_the_cap_is_413(api, online):
    big = base64.b64encode(b"0" * (720 * 1024)).decode()
    response = _send(api, online, {"to": TO, "type": "document", "media_base64": big})
    assert response.status_code == 413 and response.json_body["code"] == "media_too_large"


def test_media_urls_on_private_addresses_are_refused(api, online, settings):
    container = Container(dataclasses.replace(settings, webhook_allow_private=False))
    reset_container(container)
    for url in ("http://127.0.0.1/x.png", "http://169.254.169.254/latest", "http://10.0.0.1/a.jpg"):
        response = _send(api, online, {"to": TO, "type": "image", "media_url": url})
        assert response.status_code == 422, url
        assert response.json_body["details"][0]["field"] == "media_url"


def test_wait_without_a_runner_answers_504_naming_the_command(api, online, container):
    container.messages.wait_timeout = 0.5
    response = _send(api, online, {"to": TO, "type": "text", "text": "x"}, "?wait=true")
    assert response.status_code == 504 and response.json_body["code"] == "runner_timeout"
    assert response.json_body["details"]["command_id"]
