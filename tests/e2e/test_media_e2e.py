"""Media through the whole pipeline with the emulator and LocalStack S3:

* outgoing: presigned PUT with plain `requests` -> send with media_key -> API -> SQS ->
  runner reads the object from S3 -> the emulator saw the same bytes (sha256);
* inbound: the emulator receives an image -> runner stores it in the media bucket ->
  message.received -> events queue -> webhook dispatcher -> a real HTTP receiver, whose
  presigned `media.url` serves the same bytes; a text message arrives with no `media`.
"""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

from tests.conftest import session_headers
from tests.support.runner_harness import module_runner, pair_with_emulator, wait_for

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64 + b"\xff\xd9"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "media-e2e") as process:
        yield process


def test_uploaded_media_is_sent_by_media_key(api, runner, make_session):
    created = make_session(name="media sender")
    pair_with_emulator(api, runner, created, "5511999990002")
    sid, headers = created["session_id"], session_headers(created)
    upload = api.post(f"/sessions/{sid}/media/upload-url", headers=headers,
                      body=json.dumps({"mime_type": "application/pdf", "size": len(PHOTO), "filename": "q3.pdf"}))
    assert upload.status_code == 201, upload.body
    put = requests.put(upload.json_body["upload_url"], data=PHOTO, headers=upload.json_body["headers"], timeout=10)
    assert put.status_code == 200

    sent = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers, body=json.dumps(
        {"to": "5511912345678", "type": "document", "media_key": upload.json_body["media_key"], "filename": "q3.pdf"}))
    assert sent.status_code == 200, sent.body
    _, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    [message] = [m for m in outbox["messages"] if m["message_id"] == sent.json_body["message_id"]]
    assert message["media_sha256"] == hashlib.sha256(PHOTO).hexdigest() and message["media_size"] == len(PHOTO)
    assert message["payload"]["mime_type"] == "application/pdf"  # taken from the upload


def test_inbound_image_reaches_the_webhook_with_a_working_url(api, runner, make_session, receiver, bridge,
                                                              container):
    created = make_session(name="media receiver", webhook={"url": receiver.url("/inbound"),
                                                           "events": ["message.received"]})
    pair_with_emulator(api, runner, created, "5511999990002")
    sid = created["session_id"]
    status, answer = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", {
        "from": "5511987654321", "type": "image", "media_base64": base64.b64encode(PHOTO).decode(),
        "mime_type": "image/jpeg", "caption": "the view"})
    assert status == 200, answer
    image_id = answer["message_id"]
    status, text = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", {"from": "5511987654321",
                                                                                  "text": "and hello"})
    assert status == 200

    def bodies():
        return {r.json["data"]["message_id"]: r.json for r in receiver.on("/inbound")}

    wait_for(lambda: {image_id, text["message_id"]} <= set(bodies()), timeout=30, message="both webhooks")
    image, hello = bodies()[image_id], bodies()[text["message_id"]]
    assert image["event"] == "message.received" and image["data"]["caption"] == "the view"
    media = image["data"]["media"]
    assert media["mime_type"] == "image/jpeg" and media["size"] == len(PHOTO)
    assert media["media_key"].endswith(f"/inbound/{image_id}.jpg") and media["expires_at"]
    got = requests.get(media["url"], timeout=10)
    assert got.status_code == 200 and got.content == PHOTO
    assert media["sha256"] == hashlib.sha256(got.content).hexdigest()
    assert "media_base64" not in json.dumps(image)  # no blobs in webhooks
    assert hello["data"]["type"] == "text" and hello["data"]["text"] == "and hello" and "media" not in hello["data"]
    metrics = requests.get(f"http://127.0.0.1:{runner.metrics_port}/metrics", timeout=5).text
    assert 'zemeow_runner_inbound_media_total{outcome="stored"} 1.0' in metrics
    with container.db.connection() as conn:  # the worker released the message it held
        assert conn.execute("SELECT count(*) AS n FROM inbound_media_pending WHERE session_id = %s",
                            (sid,)).fetchone()["n"] == 0

    # later: a fresh URL for the same key; and the stored media can be sent on by its key
    fresh = api.post(f"/sessions/{sid}/media/url", headers=session_headers(created),
                     body=json.dumps({"media_key": media["media_key"]}))
    assert fresh.status_code == 200 and requests.get(fresh.json_body["url"], timeout=10).content == PHOTO
