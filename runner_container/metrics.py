"""Prometheus metrics of the runner, served with `/healthz` on `METRICS_PORT`.

It listens on `RUNNER_BIND_HOST`: loopback by default (a laptop's `make run` exposes
nothing to the LAN); the container image sets 0.0.0.0 so that its scraper can reach it.

`/healthz` answers 200 while the supervisor's loop is alive (its last tick is recent) and
the database answered on that tick; 503 otherwise. The container HEALTHCHECK uses it.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STATUSES = ("disconnected", "connecting", "connected", "authenticated", "error")


class RunnerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("zemeow_runner_sessions", "Sessions held by this runner, by status", ["status"],
                              registry=r)
        self.slots = Gauge("zemeow_runner_slots_owned", "Placement slots (of 4,096) held by this runner", registry=r)
        self.forwarded = Counter("zemeow_runner_commands_forwarded_total",
                                 "Command messages forwarded to the runner now holding their session", registry=r)
        self.commands = Counter("zemeow_runner_commands_total", "Commands executed, by type and outcome",
                                ["type", "outcome"], registry=r)
        self.command_latency = Histogram(
            "zemeow_runner_command_latency_seconds", "From the API accepting a command to its result",
            ["type"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.queue_lag = Histogram(
            "zemeow_runner_queue_lag_seconds", "From SQS accepting a command to this runner receiving it",
            registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 120))
        self.reconnects = Counter("zemeow_runner_reconnects_total", "Automatic reconnect attempts", registry=r)
        self.events = Counter("zemeow_runner_events_total", "Contract events recorded, by name", ["event"],
                              registry=r)
        self.errors = Counter("zemeow_runner_session_errors_total", "Session errors, by last_error code",
                              ["code"], registry=r)
        self.inbound_media = Counter("zemeow_runner_inbound_media_total",
                                     "Received media messages, by outcome: stored, or the media.error code",
                                     ["outcome"], registry=r)

    def set_sessions(self, counts: dict[str, int]) -> None:
        for status in STATUSES:
            self.sessions.labels(status=status).set(counts.get(status, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    def __init__(self, metrics: RunnerMetrics, port: int, health: Callable[[], tuple[bool, dict[str, Any]]],
                 host: str = "127.0.0.1"):
        self.metrics = metrics
        self.port = port
        self.host = host
        self.health = health
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                if path == "/metrics":
                    body, status, ctype = outer.metrics.render(), 200, CONTENT_TYPE_LATEST
                elif path == "/healthz":
                    ok, detail = outer.health()
                    body, status, ctype = json.dumps({"ok": ok, **detail}).encode(), 200 if ok else 503, \
                        "application/json"
                else:
                    body, status, ctype = b'{"code":"not_found"}', 404, "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def now() -> float:
    return time.time()
