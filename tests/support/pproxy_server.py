"""A real `pproxy` on loopback that logs every tunnel it opens, for tests that claim a
dial goes through a proxy (the emulator's, neonize's). Name lookups inside it are
loopback-only (`tests.integration.test_proxy.PPROXY_LOOPBACK_ONLY`), so nothing leaves the machine."""
from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from devstack import PROJECT_ROOT
from devstack.processes import free_port, start_child


@dataclass
class Pproxy:
    scheme: str  # http | socks5
    port: int
    log_path: Path
    auth: str | None

    def url(self, *, password: str | None = None) -> str:
        credentials = ""
        if self.auth:
            user, _, real = self.auth.partition(":")
            credentials = f"{user}:{password if password is not None else real}@"
        return f"{self.scheme}://{credentials}127.0.0.1:{self.port}"

    def tunnels(self) -> list[str]:
        """`host:port` of every tunnel pproxy opened (its -v lines: `socks5 client -> target`,
        or `socks5 client -> http upstream -> target` with an upstream)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return re.findall(r"^\S+ \S+ -> .*?(\S+)\s*$", text, flags=re.M)


@contextlib.contextmanager
def pproxy(workdir: Path, scheme: str, auth: str | None = None, *, dead_upstream: bool = False) -> Iterator[Pproxy]:
    """`dead_upstream`: every tunnel is sent on to a loopback port where nothing listens
    (for neonize, whose target is web.whatsapp.com:443: logged, never reached)."""
    from tests.integration.test_proxy import PPROXY_LOOPBACK_ONLY

    port = free_port()
    upstream = ["-r", f"http://127.0.0.1:{free_port()}"] if dead_upstream else []
    log = workdir / f"pproxy-{scheme}-{port}.log"
    uri = f"{scheme}://127.0.0.1:{port}" + (f"#{auth}" if auth else "")
    with log.open("wb") as sink:
        child = start_child(f"pproxy-{scheme}", [sys.executable, "-c", PPROXY_LOOPBACK_ONLY, "-l", uri,
                                                 "--auth", "0", "-v", *upstream],
                            env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}, cwd=str(PROJECT_ROOT),
                            stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if not child.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"pproxy did not start: {log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.05)
        yield Pproxy(scheme, port, log, auth)
    finally:
        child.stop(timeout=5)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A "proxy" that accepts TCP connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
