"""Received media whose storage fails: the message is still written, its `media` names the
failure. The store is the real S3 client on LocalStack, pointed at a bucket that does not
exist, so the failure is S3's own answer (NoSuchBucket), not a stub's."""
from __future__ import annotations

import secrets

from chalicelib.aws_clients import make_client
from chalicelib.media import MediaStore
from tests.integration.test_media import _image_event, _inbound, _Recorder


def test_a_storage_failure_still_writes_the_message_and_names_the_error(container):
    missing = MediaStore(make_client("s3", container.settings), f"zemeow-missing-{secrets.token_hex(6)}",
                         url_ttl=3600)
    recorder = _Recorder()
    worker = _inbound(missing, recorder)
    try:
        assert worker.handle("s-1", "message.received", _image_event(lambda: b"\xff\xd8abc")) is None
        written = recorder.wait(1)
    finally:
        worker.close()
    assert written["media"]["error"] == "media_storage_failed", written["media"]
    assert "bucket" in written["media"]["message"].lower(), written["media"]["message"]
    assert "url" not in written["media"] and "download" not in written
    # the message itself is intact
    assert (written["message_id"], written["type"], written["caption"]) == ("3EB0IMG", "image", "look")
