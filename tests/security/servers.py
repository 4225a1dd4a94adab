"""Small loopback servers for the network-guard tests: nothing here listens beyond 127.0.0.1."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hung up is expected
        pass


class HttpServer:
    """A loopback HTTP server; `routes` maps a path to a handler(BaseHTTPRequestHandler)."""

    def __init__(self, routes: dict[str, Callable[[BaseHTTPRequestHandler], None]]):
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                outer.hits.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                route = routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                route(self)

            do_GET = do_POST = _any  # noqa: N815

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def redirect_to(location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return handle


def body(data: bytes, status: int = 200) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
    return handle


def drip(total: int = 12, every: float = 1.0, stopped: threading.Event | None = None,
         ) -> Callable[[BaseHTTPRequestHandler], None]:
    """Headers at once, then the body one byte every `every` seconds (Content-Length: total)."""
    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(total))
        h.end_headers()
        h.wfile.flush()
        for _ in range(total):
            if stopped is not None and stopped.is_set():
                return
            time.sleep(every)
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return  # the client gave up: what the deadline is for
    return handle


class RawServer:
    """A TCP server that runs `serve(conn)` for every connection (banners, hanging peers)."""

    def __init__(self, serve: Callable[[socket.socket], None]):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stopped = threading.Event()
        self._held: list[socket.socket] = []

        def loop() -> None:
            self.sock.settimeout(0.1)
            while not self.stopped.is_set():
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    continue
                self.connections += 1
                self._held.append(conn)
                threading.Thread(target=self._run, args=(serve, conn), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()

    @staticmethod
    def _run(serve: Callable[[socket.socket], None], conn: socket.socket) -> None:
        try:
            serve(conn)
        except OSError:
            pass

    def close(self) -> None:
        self.stopped.set()
        for conn in self._held:
            try:
                conn.close()
            except OSError:
                pass
        self.sock.close()


def hold(stopped: threading.Event) -> Callable[[socket.socket], None]:
    """Accept and never answer (until the test ends)."""
    def serve(conn: socket.socket) -> None:
        stopped.wait(60)
    return serve
