"""The runner's media download: capped, guarded against private addresses, redirects too."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.netguard.resolve import NetPolicy
from runner_container.media_fetch import fetch_media
from runner_container.wa_messages import MessageBuildError

BODY = b"\x89PNG" + b"x" * 5000


@pytest.fixture
def server():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            if self.path == "/file.png":
                self.send_response(200)
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
            elif self.path == "/chunked":
                self.send_response(200)  # no Content-Length: the cap must cut the stream
                self.end_headers()
                self.wfile.write(BODY)
            elif self.path == "/to-metadata":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_downloads_within_the_cap(server):
    assert fetch_media(f"{server}/file.png", 10_000, policy=NetPolicy(allow_private=True)) == BODY


@pytest.mark.parametrize("path", ["/file.png", "/chunked"])
def test_over_the_cap_is_refused(server, path):
    with pytest.raises(MessageBuildError) as info:
        fetch_media(f"{server}{path}", 1000, policy=NetPolicy(allow_private=True))
    assert info.value.code == "media_too_large"


def test_private_addresses_are_refused_before_connecting(server):
    with pytest.raises(MessageBuildError) as info:
        fetch_media(f"{server}/file.png", 10_000, policy=NetPolicy(allow_private=False))
    assert info.value.code == "media_url_refused"


def test_a_redirect_to_the_metadata_address_is_refused(server):
    # allowed to reach the loopback server, never the metadata endpoint it redirects to
    with pytest.raises(MessageBuildError) as info:
        fetch_media(f"{server}/to-metadata", 10_000, policy=NetPolicy(allow_private=True))
    assert info.value.code == "media_url_refused"


def test_http_errors_are_named(server):
    with pytest.raises(MessageBuildError) as info:
        fetch_media(f"{server}/missing", 10_000, policy=NetPolicy(allow_private=True))
    assert info.value.code == "media_fetch_failed" and "404" in info.value.message
