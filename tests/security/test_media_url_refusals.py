"""Finding 8: a `media_url` redirecting to `file://`, `gopher://` or a malformed URL is a coded
refusal (`media_url_refused`): no exception text, no traceback in the runner's log.

A real loopback HTTP server answers the redirects.
"""
from __future__ import annotations

import json

import pytest

from chalicelib.netguard.resolve import NetPolicy
from runner_container.media_fetch import fetch_media
from runner_container.wa_messages import MessageBuildError
from tests.conftest import session_headers
from tests.support.runner_harness import module_runner, pair_with_emulator
from tests.security.servers import HttpServer, body, redirect_to

TARGETS = {
    "/to-file": "file:///etc/passwd",
    "/to-gopher": "gopher://127.0.0.1:70/_GET%20/",
    "/to-ftp": "ftp://127.0.0.1/x",
    "/to-bad-port": "http://127.0.0.1:99999/x",
    "/to-bad-bracket": "http://[::1/x",
    "/to-space": "http://exa mple.test/x",
}
LIBRARY_WORDS = ("No connection adapters", "InvalidSchema", "InvalidURL", "Invalid URL", "Traceback",
                 "LocationParseError", "Failed to parse", "requests.", "urllib3")


@pytest.fixture(scope="module")
def server():
    routes = {path: redirect_to(location) for path, location in TARGETS.items()}
    routes["/ok.png"] = body(b"\x89PNG ok")
    instance = HttpServer(routes)
    yield instance
    instance.close()


@pytest.mark.parametrize("path", sorted(TARGETS))
def test_redirects_to_other_schemes_or_malformed_urls_are_refused(server, path):
    with pytest.raises(MessageBuildError) as info:
        fetch_media(server.url(path), 10_000, policy=NetPolicy(allow_private=True))
    assert info.value.code == "media_url_refused", info.value.message
    for words in LIBRARY_WORDS:
        assert words not in info.value.message, info.value.message
    assert "/etc/passwd" not in info.value.message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/", "http://[::1/x", "http:///x"])
def test_such_urls_given_directly_are_refused_too(url):
    with pytest.raises(MessageBuildError) as info:
        fetch_media(url, 10_000, policy=NetPolicy(allow_private=True))
    assert info.value.code == "media_url_refused"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "media-refusals") as process:
        yield process


def test_the_command_fails_with_the_code_and_the_runner_logs_no_traceback(api, runner, make_session, server):
    created = make_session(name="media refusals")
    pair_with_emulator(api, runner, created, "5511999990077")
    sid, headers = created["session_id"], session_headers(created)
    for path in ("/to-file", "/to-gopher", "/to-bad-bracket"):
        sent = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers, body=json.dumps(
            {"to": "5511912345678", "type": "image", "media_url": server.url(path)}))
        assert sent.status_code == 502, sent.body
        assert sent.json_body["code"] == "media_url_refused", sent.json_body
        for words in LIBRARY_WORDS:
            assert words not in sent.json_body["message"], sent.json_body
    # and a good URL still goes through
    sent = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers, body=json.dumps(
        {"to": "5511912345678", "type": "image", "media_url": server.url("/ok.png")}))
    assert sent.status_code == 200, sent.body
    log = runner.log()
    assert "Traceback" not in log
    assert "InvalidSchema" not in log and "No connection adapters" not in log
