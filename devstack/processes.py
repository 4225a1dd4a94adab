"""Child processes of the local stack: started in their own process groups, stopped
together, so that Ctrl-C or a failure leaves nothing running.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=5)


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the launcher dies, even by SIGKILL.

    Children run in their own sessions (so a terminal's Ctrl-C reaches only the launcher,
    which stops them in order); this makes sure none outlives a launcher that could not."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the launcher's own cleanup still runs
        pass


def start_child(name: str, argv: list[str], env: dict[str, str], cwd: str, **kwargs) -> Child:
    process = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True, preexec_fn=die_with_parent,
                               **kwargs)
    return Child(name, process)


def wait_http(url: str, *, timeout: float, accept=lambda status: True, child: Child | None = None) -> int:
    """Wait until `url` answers with a status `accept` likes; return that status."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
            time.sleep(0.2)
            continue
        if accept(status):
            return status
        last = f"HTTP {status}"
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer as expected within {timeout:g}s ({last})")
