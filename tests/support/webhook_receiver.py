"""A real HTTP webhook receiver for the tests and the benchmark: a thread on a loopback port.

Every request is recorded (path, headers, body, arrival time) and, when a secret is
registered for its path, verified with the `standardwebhooks` library (code we did not
write). Behaviour per path is scriptable: `set_behaviour(path, fn)` where
`fn(nth_request_on_path) -> (status, headers, delay_seconds)`.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Behaviour = Callable[[int], tuple[int, dict[str, str], float]]


def ok(_n: int) -> tuple[int, dict[str, str], float]:
    return 200, {}, 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int
    secrets: Callable[[], list[str]] | None = None

    def _verify(self) -> tuple[bool | None, str | None]:
        """Checked with `standardwebhooks` against the secrets registered for the path (at access time)."""
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        secrets = self.secrets() if self.secrets else []
        if not secrets:
            return None, "no secret registered for " + self.path
        errors = []
        for secret in secrets:
            try:
                Webhook(secret).verify(self.body, self.headers)
                return True, None
            except WebhookVerificationError as exc:
                errors.append(str(exc))
        return False, "; ".join(errors)

    @property
    def verified(self) -> bool | None:
        return self._verify()[0]

    @property
    def verify_error(self) -> str | None:
        return self._verify()[1]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


@dataclass
class Receiver:
    record: bool = True
    requests: list[Received] = field(default_factory=list)
    secrets: dict[str, list[str]] = field(default_factory=dict)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    on_request: Callable[[Received], None] | None = None

    def __post_init__(self) -> None:
        self.cond = threading.Condition()
        self.release = threading.Event()  # set at shutdown: hanging handlers return
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver._handle(self, body)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hung up (a timed-out or killed dispatcher) is expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       daemon=True, name="webhook-receiver")
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def set_behaviour(self, path: str, behaviour: Behaviour) -> None:
        with self.cond:
            self.behaviours[path] = behaviour

    def set_secrets(self, path: str, *secrets: str) -> None:
        with self.cond:
            self.secrets[path] = list(secrets)

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        with self.cond:
            n = self.counts.get(path, 0) + 1
            self.counts[path] = n
            behaviour = self.behaviours.get(path, ok)
        status, headers, delay = behaviour(n)
        if delay:
            self.release.wait(delay)
        item = Received(path, {k.lower(): v for k, v in handler.headers.items()}, body, time.time(), status,
                        secrets=lambda: list(self.secrets.get(path, [])))
        try:
            payload = b'{"ok":true}' if 200 <= status < 300 else b'{"error":"scripted failure"}'
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the dispatcher gave up (timeout) and closed the connection
        with self.cond:
            self.total += 1
            if self.record:
                self.requests.append(item)
            if self.on_request:
                self.on_request(item)
            self.cond.notify_all()

    def on(self, path: str) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
                self.cond.wait(min(remaining, 0.5))

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "condition", interval: float = 0.1) -> Any:
    """Poll a condition that has no notification (database rows, queue depths)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
