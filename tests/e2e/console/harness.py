"""The console's browser tests: one real stack per module (chalice local, a runner with the
emulator driver, the SQS bridge, a reverse proxy that adds API Gateway's stage prefix) and
Debian's Chromium driven by Playwright. Screenshots go to `.zemeow/screenshots/console/`."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devstack import PROJECT_ROOT
from devstack.processes import Child, free_port, start_child, wait_http

SCREENSHOTS = PROJECT_ROOT / ".zemeow" / "screenshots" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    """Debian's Chromium (`make test` installs it). Missing is a failure, never a skip."""
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise AssertionError("Chromium is not installed: `apt-get install chromium` (make test does it); "
                             "the console's browser tests cannot run without it")
    return found


def start_api(env: dict[str, str], log_path: Path) -> tuple[Child, str]:
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    child = start_child("console-api", [str(Path(sys.executable).parent / "chalice"), "local", "--stage", "local",
                                        "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
                        {**env, "SERVER_PORT": str(port)}, str(PROJECT_ROOT), stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/console", timeout=60, child=child, accept=lambda status: status == 200)
    return child, f"http://127.0.0.1:{port}"


def start_bridge(env: dict[str, str], log_path: Path) -> Child:
    log = open(log_path, "wb")  # noqa: SIM115
    return start_child("console-bridge", [sys.executable, "-m", "devstack", "bridge"], env, str(PROJECT_ROOT),
                       stdout=log, stderr=subprocess.STDOUT)


class StageProxy:
    """Plays API Gateway's stage path: `/api/<path>` here is `<path>` on the API."""

    def __init__(self, upstream: str, stage: str = "api"):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def _forward(self) -> None:
                if not self.path.startswith(f"/{stage}/"):
                    self.send_error(403, "outside the stage")  # API Gateway answers nothing outside it either
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(upstream + self.path[len(stage) + 1:], data=body,
                                                 method=self.command, headers=headers)
                proxy.paths.append(self.path)
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, answer_headers, data = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as exc:
                    status, answer_headers, data = exc.code, exc.headers, exc.read()
                self.send_response(status)
                for name, value in answer_headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward  # noqa: N815

        self.paths: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{stage}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def api_call(base: str, method: str, path: str, key: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw, status = answer.read(), answer.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    return status, (json.loads(raw) if raw else {})


def decode_qr(data_uri: str) -> str:
    """The text of the QR code in a `data:image/png;base64,...` image (zxing-cpp, not our encoder)."""
    import zxingcpp
    from PIL import Image

    assert data_uri.startswith("data:image/png;base64,"), data_uri[:40]
    image = Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1])))
    found = zxingcpp.read_barcodes(image)
    assert found, "no QR code found in the image"
    return found[0].text


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
