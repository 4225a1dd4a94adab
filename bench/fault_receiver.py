"""The webhook receiver of the fault bench: records every request it answers, can go down
(its port closed: connection refused) and come back on the same port, and can answer 500
to every other request or answer one path slowly.

What it records is what the bench counts as delivered: an event id (the `webhook-id`
header) answered 2xx once is delivered; twice is a duplicate.
"""
from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dispatcher that timed out and hung up


class FaultReceiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ok: Counter[str] = Counter()  # event id -> 2xx answers
        self.failed_answers = 0  # 5xx answers given on purpose
        self.requests = 0
        self.events: dict[str, str] = {}  # event id -> event name
        self.flaky = False  # answer 500 to every other request
        self.slow_path: str | None = None  # this path answers after `slow_seconds`
        self.slow_seconds = 8.0
        self.release = threading.Event()
        self.server: _Server | None = None
        self.is_down = False
        self.port = 0
        self.up()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.is_down:  # a kept-alive connection from before the outage: hang up
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                receiver._answer(self, body)

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.is_down = False
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                         name="fault-receiver").start()

    def down(self) -> None:
        """Close the port: new connections are refused and kept-alive ones hung up until `up()`."""
        self.is_down = True
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        event_id = handler.headers.get("webhook-id", "")
        with self.lock:
            self.requests += 1
            fail = self.flaky and self.requests % 2 == 0
            slow = self.slow_path is not None and handler.path == self.slow_path
        if slow:
            self.release.wait(self.slow_seconds)
        status = 500 if fail else 200
        try:
            payload = b'{"ok":true}' if status == 200 else b'{"error":"scripted failure"}'
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            return  # the dispatcher hung up first: not delivered
        with self.lock:
            if status == 200:
                self.ok[event_id] += 1
                try:
                    self.events[event_id] = json.loads(body).get("event", "")
                except ValueError:
                    pass
            else:
                self.failed_answers += 1

    def delivered(self) -> Counter[str]:
        with self.lock:
            return Counter(self.ok)

    def close(self) -> None:
        self.release.set()
        self.down()
