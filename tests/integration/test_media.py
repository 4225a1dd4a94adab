"""Media storage (issue 6) without a runner: upload URLs and presigned PUTs into the media
bucket on LocalStack, fresh download URLs, the checks a `media_key` passes before a send,
the clean-up on session delete, the behaviour without MEDIA_BUCKET, the configuration,
and the runner's inbound-media worker with real neonize objects."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from types import SimpleNamespace

import pytest
import requests

from chalicelib.bootstrap import Container, reset_container
from chalicelib.config import load_settings
from chalicelib.errors import ConfigError
from chalicelib.media import MediaStore, inbound_key
from tests.conftest import session_headers

PICTURE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16


def _authenticated(db, created) -> None:
    """Sending needs a logged-in session; no runner is involved in these tests."""
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET status = 'authenticated' WHERE session_id = %s", (created["session_id"],))


def _upload(api, created, data: bytes = PICTURE, mime_type: str = "image/png") -> dict:
    response = api.post(f"/sessions/{created['session_id']}/media/upload-url", headers=session_headers(created),
                        body=json.dumps({"mime_type": mime_type, "size": len(data), "filename": "pic.png"}))
    assert response.status_code == 201, response.body
    answer = response.json_body
    put = requests.put(answer["upload_url"], data=data, headers=answer["headers"], timeout=10)
    assert put.status_code == 200, put.text
    return answer


def test_upload_url_round_trip_through_s3(api, make_session, settings):
    created = make_session()
    answer = _upload(api, created)
    session_uuid = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created)).json_body["id"]
    assert answer["media_key"].startswith(f"sessions/{session_uuid}/uploads/") and answer["media_key"].endswith(".png")
    assert answer["method"] == "PUT" and answer["upload_url"].startswith(settings.aws_endpoint_url + "/")
    assert answer["headers"] == {"Content-Type": "image/png", "Content-Length": str(len(PICTURE))}
    assert "X-Amz-Signature=" in answer["upload_url"] and "content-length" in answer["upload_url"]

    fresh = api.post(f"/sessions/{created['session_id']}/media/url", headers=session_headers(created),
                     body=json.dumps({"media_key": answer["media_key"]}))
    assert fresh.status_code == 200, fresh.body
    assert fresh.json_body["size"] == len(PICTURE) and fresh.json_body["mime_type"] == "image/png"
    got = requests.get(fresh.json_body["url"], timeout=10)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == hashlib.sha256(PICTURE).hexdigest()


def test_upload_url_refuses_a_size_over_the_cap(api, make_session, settings):
    created = make_session()
    response = api.post(f"/sessions/{created['session_id']}/media/upload-url", headers=session_headers(created),
                        body=json.dumps({"mime_type": "video/mp4", "size": settings.media_max_bytes + 1}))
    assert response.status_code == 413
    assert response.json_body["code"] == "media_too_large" and response.json_body["details"][0]["field"] == "size"
    bad = api.post(f"/sessions/{created['session_id']}/media/upload-url", headers=session_headers(created),
                   body=json.dumps({"mime_type": "not a type", "size": 0}))
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json_body["details"]} == {"mime_type", "size"}


def test_a_session_cannot_use_or_read_another_sessions_media(api, db, make_session):
    owner, intruder = make_session(), make_session()
    answer = _upload(api, owner)
    _authenticated(db, intruder)
    send = api.post(f"/sessions/{intruder['session_id']}/messages", headers=session_headers(intruder),
                    body=json.dumps({"to": "5511912345678", "type": "image", "media_key": answer["media_key"]}))
    assert send.status_code == 422
    assert send.json_body["details"][0]["field"] == "media_key"
    assert send.json_body["details"][0]["type"] == "foreign_media_key"
    read = api.post(f"/sessions/{intruder['session_id']}/media/url", headers=session_headers(intruder),
                    body=json.dumps({"media_key": answer["media_key"]}))
    assert read.status_code == 422 and read.json_body["details"][0]["field"] == "media_key"


def test_a_send_names_a_missing_or_oversized_media_key(api, db, container, make_session):
    created = make_session()
    _authenticated(db, created)
    session_uuid = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created)).json_body["id"]
    missing = f"sessions/{session_uuid}/uploads/0123456789abcdef.png"

    def send(body):
        return api.post(f"/sessions/{created['session_id']}/messages", headers=session_headers(created),
                        body=json.dumps({"to": "5511912345678", "type": "image", **body}))

    answer = send({"media_key": missing})
    assert answer.status_code == 422 and answer.json_body["details"][0]["type"] == "not_found"
    two = send({"media_key": missing, "media_url": "http://127.0.0.1:9/x.png"})
    assert two.status_code == 422 and "exactly one of media_url, media_base64 or media_key" in two.body.decode()
    fresh = api.post(f"/sessions/{created['session_id']}/media/url", headers=session_headers(created),
                     body=json.dumps({"media_key": missing}))
    assert fresh.status_code == 404 and fresh.json_body["code"] == "media_not_found"

    # an object larger than MEDIA_MAX_BYTES (a client that ignored the signed size) is refused before queueing
    small = dataclasses.replace(container.settings, media_max_bytes=1024)
    capped = Container(small)
    reset_container(capped)
    try:
        key = f"sessions/{session_uuid}/uploads/big.png"
        capped.media_store.put(key, PICTURE, "image/png")
        too_big = send({"media_key": key})
        assert too_big.status_code == 413 and too_big.json_body["code"] == "media_too_large"
    finally:
        reset_container(container)  # (closes `capped`)


def test_deleting_a_session_deletes_its_media(api, container, make_session, admin_headers):
    created = make_session()
    answer = _upload(api, created)
    assert container.media_store.head(answer["media_key"])["size"] == len(PICTURE)
    assert api.delete(f"/sessions/{created['session_id']}", headers=admin_headers).status_code == 204
    from chalicelib.media import MediaNotFound

    with pytest.raises(MediaNotFound):
        container.media_store.head(answer["media_key"])


@pytest.fixture
def no_bucket(settings, container):
    """Installed after conftest's `container` (which the `api` fixture serves), replacing it."""
    instance = Container(dataclasses.replace(settings, media_bucket=None, inbound_media="off"))
    reset_container(instance)
    yield instance
    reset_container(container)  # (closes `instance`)


def test_without_media_bucket_the_media_routes_answer_503(no_bucket, api, db, make_session):
    created = make_session()
    response = api.post(f"/sessions/{created['session_id']}/media/upload-url", headers=session_headers(created),
                        body=json.dumps({"mime_type": "image/png", "size": 10}))
    assert response.status_code == 503 and response.json_body["code"] == "media_storage_not_configured"
    assert "MEDIA_BUCKET" in response.json_body["message"]
    _authenticated(db, created)
    uuid = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created)).json_body["id"]
    send = api.post(f"/sessions/{created['session_id']}/messages", headers=session_headers(created),
                    body=json.dumps({"to": "5511912345678", "type": "image",
                                     "media_key": f"sessions/{uuid}/uploads/abc.png"}))
    assert send.status_code == 503 and send.json_body["code"] == "media_storage_not_configured"


def test_media_configuration_is_validated():
    bucket = {"MEDIA_BUCKET": "zemeow-media-123456789012-us-east-1"}
    assert load_settings(bucket).inbound_media == "s3"  # the default with a bucket
    assert load_settings({}).inbound_media == "off" and load_settings({}).media_bucket is None
    assert load_settings({**bucket, "INBOUND_MEDIA": "off", "MEDIA_URL_TTL": "2h"}).media_url_ttl == 7200
    assert load_settings({**bucket, "MEDIA_URL_TTL": "7d"}).media_url_ttl == 604800
    for env, name in [({"INBOUND_MEDIA": "s3"}, "INBOUND_MEDIA"), ({**bucket, "MEDIA_URL_TTL": "8d"}, "MEDIA_URL_TTL"),
                      ({"MEDIA_BUCKET": "Has_Upper"}, "MEDIA_BUCKET"), ({"INBOUND_MEDIA": "disk"}, "INBOUND_MEDIA"),
                      ({"MEDIA_MAX_BYTES": str(65 * 1024 * 1024)}, "MEDIA_MAX_BYTES")]:
        with pytest.raises(ConfigError) as error:
            load_settings(env)
        assert name in str(error.value)


# -- the runner's inbound-media worker ----------------------------------------------------
class _Recorder:
    def __init__(self):
        self.events: list[tuple[str, str, dict]] = []
        self.cond = threading.Condition()

    def __call__(self, session_id, name, data, session_uid=None):
        with self.cond:
            self.events.append((session_id, name, data))
            self.cond.notify_all()

    def wait(self, count=1):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.events) >= count, 10), "no event written"
        return self.events[-1][2]


def _inbound(store, recorder, **options):
    from runner_container.inbound_media import InboundMedia

    return InboundMedia(store, enabled=store is not None, max_bytes=options.pop("max_bytes", 1 << 20),
                        session_uuid=lambda sid: "00000000-0000-0000-0000-000000000001", record=recorder,
                        log=SimpleNamespace(error=print), **options)


def _image_event(download):
    return {"message_id": "3EB0IMG", "type": "image", "mime_type": "image/jpeg", "file_length": 5,
            "caption": "look", "download": download}


def test_inbound_media_is_stored_and_failures_still_write_the_message(container):
    recorder = _Recorder()
    worker = _inbound(container.media_store, recorder, timeout=0.3)
    try:
        assert worker.handle("s-1", "message.received", _image_event(lambda: b"\xff\xd8abc")) is None
        media = recorder.wait(1)["media"]
        assert media["media_key"] == inbound_key("00000000-0000-0000-0000-000000000001", "3EB0IMG", "image",
                                                 "image/jpeg")
        assert media["sha256"] == hashlib.sha256(b"\xff\xd8abc").hexdigest() and media["size"] == 5
        assert requests.get(media["url"], timeout=10).content == b"\xff\xd8abc"

        def broken():
            raise RuntimeError("cdn said 403")

        worker.handle("s-1", "message.received", _image_event(broken))
        failed = recorder.wait(2)
        assert failed["media"]["error"] == "media_download_failed" and "403" in failed["media"]["message"]
        assert failed["caption"] == "look" and "download" not in failed  # the message itself is intact

        release = threading.Event()
        worker.handle("s-1", "message.received", _image_event(lambda: release.wait(10) and b"late"))
        assert recorder.wait(3)["media"]["error"] == "media_timeout"
        release.set()
    finally:
        worker.close()


def test_a_message_held_by_a_dead_runner_is_written_once_without_its_file(container, make_session):
    """kill -9 while a media worker holds a received message: the pending row outlives the
    runner, the sweeper writes the message with media.error, and a late worker (or a second
    sweep) writes nothing more."""
    from chalicelib.repositories.message_store import MessageStoreRepository
    from psycopg.types.json import Jsonb
    from chalicelib.repositories.inbound_media import PendingMediaRepository
    from chalicelib.repositories.session_store import SessionStore
    from runner_container.inbound_media import record_message_event, sweep_abandoned
    from tests.support.runner_harness import outbox_events

    sid = make_session()["session_id"]
    counter = SimpleNamespace(inc=lambda: None)
    outcomes: list[str] = []
    media_counter = SimpleNamespace(labels=lambda outcome: SimpleNamespace(inc=lambda: outcomes.append(outcome)))
    runner = SimpleNamespace(store=SessionStore(container.db, container.events),
                             pending=PendingMediaRepository(container.db),
                             settings=SimpleNamespace(runner_id="killed-runner"),
                             events=SimpleNamespace(send=lambda envelopes: None),
                             metrics=SimpleNamespace(events=SimpleNamespace(labels=lambda **_: counter),
                                                     inbound_media=media_counter))
    data = {"message_id": "3EB0HELD", "type": "image", "mime_type": "image/jpeg", "caption": "the receipt",
            "chat": {"jid": "5511912345678@s.whatsapp.net", "phone": "5511912345678"},
            "from": {"jid": "5511912345678@s.whatsapp.net", "phone": "5511912345678"}, "from_me": False}
    with container.db.connection() as conn:  # what InboundMedia.hold wrote before the runner died
        conn.execute("INSERT INTO inbound_media_pending (session_id, message_id, event, data, runner_id) "
                     "VALUES (%s, '3EB0HELD', 'message.received', %s, 'killed-runner')", (sid, Jsonb(data)))

    assert sweep_abandoned(runner) == 0  # young: a live worker may still be storing it
    with container.db.connection() as conn:
        conn.execute("UPDATE inbound_media_pending SET created_at = now() - interval '11 minutes' "
                     "WHERE session_id = %s", (sid,))
    assert sweep_abandoned(runner) == 1
    assert sweep_abandoned(runner) == 0
    assert record_message_event(runner, sid, "message.received", {**data, "media": {"url": "late"}},
                                held=True) is False  # the late worker
    written = [e for e in outbox_events(container.db, sid) if e["event"] == "message.received"]
    assert len(written) == 1
    assert written[0]["data"]["caption"] == "the receipt"
    assert written[0]["data"]["media"]["error"] == "media_abandoned"
    uid = container.session_repo.status_of(sid)["id"]
    stored = MessageStoreRepository(container.db).find(str(uid), "3EB0HELD")
    assert stored["preview"] == "the receipt" and stored["type"] == "image"
    assert outcomes == ["media_abandoned"]  # counted once, like the event


def test_inbound_media_off_or_too_large_is_said_in_the_event_at_once():
    recorder, outcomes = _Recorder(), []
    off = _inbound(None, recorder, observe=outcomes.append)
    data = off.handle("s-1", "message.received", _image_event(lambda: b"x"))
    assert data["media"]["error"] == "media_storage_off" and "download" not in data
    big = _inbound(MediaStore(None, "unused", url_ttl=60), recorder, max_bytes=4, observe=outcomes.append)
    assert big.handle("s-1", "message.received", _image_event(lambda: b"x"))["media"]["error"] == "media_too_large"
    assert outcomes == ["media_storage_off", "media_too_large"]  # the runner's inbound media metric
    assert recorder.events == []  # nothing went to a worker


def test_a_real_neonize_download_failure_reaches_the_event(tmp_path, container):
    """neonize's own client and protobufs: `download_any` on a client that is not connected
    raises neonize's DownloadError offline; the event is written with the reason."""
    from neonize.client import NewClient
    from neonize.events import MessageEv
    from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ContextInfo, ImageMessage, Message

    from runner_container.drivers.base import SessionConfig
    from runner_container.drivers.neonize_driver import NeonizeClient

    phone = JID(User="5511999990000", Server="s.whatsapp.net", IsEmpty=False)
    event = MessageEv(Info=MessageInfo(ID="3EB0NEO", Timestamp=1767225600, MessageSource=MessageSource(
        Chat=phone, Sender=phone)), Message=Message(imageMessage=ImageMessage(
            mimetype="image/jpeg", fileLength=2048, caption="from the phone",
            contextInfo=ContextInfo(stanzaID="3EB0QUOTED"))))
    seen = []
    client = NeonizeClient(SimpleNamespace(neonize_url="unused", polls=None), SessionConfig("s-neo", None, None),
                           lambda kind, data: seen.append((kind, data)))
    client.client = NewClient(str(tmp_path / "neonize.sqlite3"), uuid="s-neo")
    client._on_event(None, event)
    [(kind, data)] = seen
    assert kind == "event" and callable(data["data"]["download"])
    assert data["data"]["quoted_message_id"] == "3EB0QUOTED" and data["data"]["caption"] == "from the phone"

    recorder = _Recorder()
    worker = _inbound(container.media_store, recorder)
    try:
        assert worker.handle("s-neo", data["event"], data["data"]) is None
        written = recorder.wait(1)
        assert written["media"]["error"] == "media_download_failed"
        assert written["media"]["message"] and written["media"]["size"] == 2048
        assert written["message_id"] == "3EB0NEO"
    finally:
        worker.close()


def test_presigned_urls_never_outlive_the_credentials_that_signed_them():
    """Temporary credentials (a task role's) cut a URL's life: `expires_at` says the truth."""
    from datetime import datetime, timezone

    asked = []
    now = 1_800_000_000.0
    credentials = SimpleNamespace(_expiry_time=datetime.fromtimestamp(now + 3600, timezone.utc))
    s3 = SimpleNamespace(_request_signer=SimpleNamespace(_credentials=credentials),
                         generate_presigned_url=lambda op, Params, ExpiresIn: asked.append(ExpiresIn) or "https://u")
    store = MediaStore(s3, "bucket", url_ttl=7 * 86400, clock=lambda: now)
    signed = store.presign_get("sessions/x/inbound/a.jpg")
    assert asked == [3600] and signed.expires_in == 3600 and signed.expires_at == "2027-01-15T09:00:00Z"
    credentials._expiry_time = None  # long-lived keys (LocalStack, an IAM user): the configured TTL
    assert store.presign_get("k").expires_in == 7 * 86400
