"""The outbound client's answers in our own words, one kind per way a peer can fail, and the
keep-alive that makes it cheap: every case here talks to a real loopback server.

The client is urllib3 directly (chalicelib/netguard/http.py); these pin what its callers
branch on (`kind`) and what they store (`message`), so a change of library cannot quietly
turn a cut-off answer into a timeout or a redirect loop into a refusal.
"""
from __future__ import annotations

import socket

import pytest

from chalicelib.netguard.http import OutboundError, OutboundHttp, OutboundRefused
from chalicelib.netguard.resolve import NetPolicy
from tests.security.servers import HttpServer, RawServer, body, redirect_to


@pytest.fixture
def client():
    return OutboundHttp(NetPolicy(allow_private=True), user_agent="zemeow-test")


def raw(answer: bytes, *, close: bool = True):
    def serve(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(answer)
        if close:
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
    return serve


def failure(client, answer: bytes, method: str = "GET", **options) -> OutboundError:
    """The error `client` raises against a raw server that answers `answer` and hangs up."""
    server = RawServer(raw(answer))
    try:
        with pytest.raises(OutboundError) as info:
            client.request(method, f"http://127.0.0.1:{server.port}/", timeout=5, **options)
        return info.value
    finally:
        server.close()


def test_a_redirect_loop_is_too_many_redirects(client):
    server = HttpServer({"/a": redirect_to("/b"), "/b": redirect_to("/a")})
    try:
        with pytest.raises(OutboundError) as info:
            client.request("GET", server.url("/a"), timeout=5, follow_redirects=True, max_redirects=3)
        assert info.value.kind == "too_many_redirects"
        assert server.hits == ["/a", "/b", "/a", "/b"]  # the first request and three hops, no more
    finally:
        server.close()


def test_a_redirect_is_returned_as_is_unless_followed(client):
    server = HttpServer({"/a": redirect_to("/b"), "/b": body(b"there")})
    try:
        answer = client.request("GET", server.url("/a"), timeout=5)
        assert answer.status == 302 and answer.headers["Location"] == "/b"
        assert client.request("GET", server.url("/a"), timeout=5, follow_redirects=True).body == b"there"
    finally:
        server.close()


def test_a_cross_host_redirect_drops_the_authorization_header(client):
    seen = {}

    def record(h):
        seen["authorization"] = h.headers.get("Authorization")
        body(b"ok")(h)

    target = HttpServer({"/x": record})
    origin = HttpServer({"/a": redirect_to(f"http://localhost:{target.port}/x")})
    try:
        answer = client.request("GET", origin.url("/a"), timeout=5, follow_redirects=True,
                                headers={"Authorization": "Bearer secret"})
        assert answer.body == b"ok" and seen == {"authorization": None}
    finally:
        origin.close()
        target.close()


def test_a_redirect_to_another_scheme_is_a_refusal(client):
    server = HttpServer({"/a": redirect_to("file:///etc/passwd")})
    try:
        with pytest.raises(OutboundRefused, match="not a valid http"):
            client.request("GET", server.url("/a"), timeout=5, follow_redirects=True)
    finally:
        server.close()


def test_a_closed_port_is_a_failed_connection_named_by_its_errno(client):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(OutboundError) as info:
        client.request("POST", f"http://127.0.0.1:{port}/hook", data=b"{}", timeout=5)
    assert (info.value.kind, info.value.message) == ("connection_failed", "connection failed: Connection refused")


def test_a_peer_that_hangs_up_before_answering_is_a_failed_connection(client):
    assert failure(client, b"", "POST", data=b"{}").kind == "connection_failed"


def test_an_answer_cut_off_mid_body_is_a_protocol_error(client):
    error = failure(client, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part")
    assert (error.kind, error.message) == ("protocol_error", "the answer was cut off or is not valid HTTP")


def test_a_broken_chunk_length_is_a_protocol_error_not_a_refusal(client):
    """A refusal is final (a webhook is not retried); a broken answer must stay retryable."""
    error = failure(client, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
    assert error.kind == "protocol_error"


def test_garbage_instead_of_http_is_not_a_success(client):
    error = failure(client, b"SSH-2.0-OpenSSH_9.6\r\n")
    assert error.kind in ("protocol_error", "connection_failed")
    assert "SSH" not in error.message  # never the peer's bytes


def test_a_declared_body_over_the_limit_is_too_large_before_reading_it(client):
    error = failure(client, b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 1000, max_bytes=1000)
    assert (error.kind, error.declared_size) == ("too_large", 5_000_000)


def test_posts_to_one_endpoint_reuse_one_connection(client):
    """Keep-alive: the webhook pipeline's speed rests on it (a new TCP connection per POST
    would double its cost). Ten POSTs from one thread, one connection at the server."""
    def serve(conn: socket.socket) -> None:
        buffer = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) < length:
                    break
                buffer = rest[length:]
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    server = RawServer(serve)
    try:
        for n in range(10):
            answer = client.request("POST", f"http://127.0.0.1:{server.port}/hook", data=b'{"n": %d}' % n,
                                    headers={"Content-Type": "application/json"}, timeout=5)
            assert answer.status == 204
        assert server.connections == 1
    finally:
        server.close()


def test_the_user_agent_is_ours_and_a_callers_header_wins(client):
    seen = []

    def record(h):
        seen.append((h.headers.get("User-Agent"), h.headers.get("X-Extra")))
        body(b"")(h)

    server = HttpServer({"/": record})
    try:
        client.request("GET", server.url("/"), timeout=5, headers={"X-Extra": "1"})
        client.request("GET", server.url("/"), timeout=5, headers={"user-agent": "custom"})
        assert seen == [("zemeow-test", "1"), ("custom", None)]
    finally:
        server.close()
