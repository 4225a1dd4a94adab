"""Every message type through the whole pipeline with the emulator:
API -> commands row -> SQS FIFO shard -> runner -> driver (its outbox) -> message.sent event."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import module_runner, outbox_events, pair_with_emulator, wait_for

PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
DOCUMENT = b"%PDF-1.4\n" + b"report " * 500


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "messages-e2e") as process:
        yield process


@pytest.fixture(scope="module")
def media_server():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            body = DOCUMENT if self.path.endswith(".pdf") else PICTURE
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def paired(api, runner, make_session):
    created = make_session(name="sender")
    pair_with_emulator(api, runner, created, "5511999990001")
    return created


def _send(api, created, body):
    response = api.post(f"/sessions/{created['session_id']}/messages?wait=true", headers=session_headers(created),
                        body=json.dumps(body))
    assert response.status_code == 200, response.body
    return response.json_body


def test_every_type_reaches_the_driver_with_its_content(api, db, runner, paired, media_server):
    sid = paired["session_id"]
    to = "+55 11 91234-5678"
    bodies = [
        {"type": "text", "text": "hello", "link_preview": True, "quoted_message_id": "3EB0QUOTE"},
        {"type": "image", "media_base64": base64.b64encode(PICTURE).decode(), "caption": "inline", "view_once": True},
        {"type": "image", "media_url": f"{media_server}/pic.png", "caption": "fetched"},
        {"type": "video", "media_url": f"{media_server}/clip.mp4"},
        {"type": "audio", "media_base64": base64.b64encode(PICTURE).decode(), "voice_note": True},
        {"type": "document", "media_url": f"{media_server}/q3.pdf", "filename": "q3.pdf", "mime_type": "application/pdf"},
        {"type": "sticker", "media_base64": base64.b64encode(PICTURE).decode()},
        {"type": "location", "latitude": -23.55, "longitude": -46.63, "name": "Office", "address": "Av. Paulista"},
        {"type": "contact", "vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Ann Lee\nEND:VCARD"},
        {"type": "reaction", "message_id": "3EB0QUOTE", "emoji": "👍"},
        {"type": "edit", "message_id": "3EB0QUOTE", "text": "hello, fixed"},
        {"type": "revoke", "message_id": "3EB0QUOTE"},
        {"type": "poll", "question": "Lunch?", "options": ["pizza", "sushi"], "selectable_count": 1},
    ]
    answers = [_send(api, paired, {"to": to, **body}) for body in bodies]
    assert all(a["status"] == "succeeded" and a["message_id"] for a in answers)

    _, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    sent = outbox["messages"]
    assert [m["message_id"] for m in sent] == [a["message_id"] for a in answers]
    for body, message in zip(bodies, sent):
        assert message["to"] == "5511912345678@s.whatsapp.net"
        expected = {k: v for k, v in body.items() if k != "media_base64"}
        assert {k: message["payload"].get(k) for k in expected} == expected, body["type"]
    digest = hashlib.sha256(PICTURE).hexdigest()
    media = {(m["type"], m["payload"].get("caption")): m for m in sent if "media_sha256" in m}
    assert media[("image", "inline")]["media_sha256"] == digest          # decoded from base64
    assert media[("image", "fetched")]["media_sha256"] == digest         # downloaded by the runner
    assert media[("document", None)]["media_size"] == len(DOCUMENT)

    events = wait_for(lambda: (e := [x for x in outbox_events(db, sid) if x["event"] == "message.sent"])
                      and len(e) == len(bodies) and e, message="one message.sent per message")
    assert [e["data"]["message_id"] for e in events] == [a["message_id"] for a in answers]
    assert all("media_base64" not in e["data"] for e in events)  # no blobs in events


def test_runner_side_media_failures_fail_the_command_with_a_code(api, paired, media_server):
    response = api.post(f"/sessions/{paired['session_id']}/messages?wait=true", headers=session_headers(paired),
                        body=json.dumps({"to": "5511912345678", "type": "image",
                                         "media_url": "http://127.0.0.1:9/nothing-listens.png"}))
    assert response.status_code == 502
    assert response.json_body["code"] == "media_fetch_failed"
    assert response.json_body["details"]["command_id"]


def test_an_idempotency_key_sends_once_through_the_runner(api, runner, paired):
    sid = paired["session_id"]
    body = {"to": "5511912345678", "type": "text", "text": "only once", "idempotency_key": "invoice-7"}
    first, second = _send(api, paired, body), _send(api, paired, body)
    assert first == second
    _, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    assert [m["text"] for m in outbox["messages"]].count("only once") == 1


def test_replies_and_reactions_name_the_message_they_refer_to(api, db, runner, paired):
    """The runner looks quoted and reacted-to ids up in the message store, so the driver gets
    the author and the preview WhatsApp needs (not only a bare id)."""
    sid = paired["session_id"]
    ours = _send(api, paired, {"to": "5511912345678", "type": "text", "text": "the invoice is attached"})
    status, inbound = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                      {"from": "5511912345678", "text": "thanks! when is it due?"})
    assert status == 200

    def logged():
        with db.connection() as conn:
            return conn.execute("SELECT 1 FROM messages m JOIN sessions s ON s.id = m.session_uid "
                                "WHERE s.session_id = %s AND m.message_id = %s",
                                (sid, inbound["message_id"])).fetchone()

    wait_for(logged, message="the inbound message is logged")

    _send(api, paired, {"to": "5511912345678", "type": "text", "text": "friday",
                        "quoted_message_id": inbound["message_id"]})
    _send(api, paired, {"to": "5511912345678", "type": "text", "text": "(resent)",
                        "quoted_message_id": ours["message_id"]})
    _send(api, paired, {"to": "5511912345678", "type": "reaction", "message_id": inbound["message_id"],
                        "emoji": "👍"})
    _send(api, paired, {"to": "5511912345678", "type": "text", "text": "unknown quote",
                        "quoted_message_id": "3EB0NEVERSEEN"})

    _, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    payloads = {m["text"] or m["type"]: m["payload"] for m in outbox["messages"]}
    assert payloads["friday"]["quoted"] == {
        "message_id": inbound["message_id"], "chat": "5511912345678@s.whatsapp.net", "from_me": False,
        "sender": "5511912345678@s.whatsapp.net", "type": "text", "preview": "thanks! when is it due?"}
    own = payloads["(resent)"]["quoted"]
    assert (own["from_me"], own["sender"], own["preview"]) == (True, "5511999990001@s.whatsapp.net",
                                                               "the invoice is attached")
    assert payloads["reaction"]["target"]["sender"] == "5511912345678@s.whatsapp.net"
    assert payloads["reaction"]["target"]["from_me"] is False
    assert "quoted" not in payloads["unknown quote"]  # sent as given: the id alone
