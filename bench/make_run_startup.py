"""Time `make run` from a clean clone: first start (venvs installed from scratch) and second.

    python3 bench/make_run_startup.py [--keep]

Clones the current HEAD into a temporary folder, runs `make run` there with its own
ports (API and LocalStack, so a LocalStack you already run is not reused and the
LocalStack start is measured too), waits until GET /health answers 200, stops it with
Ctrl-C, and does it again. Prints both wall times. Uses only the standard library, so
it runs with the machine's python3 before any venv exists.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def one_start(clone: Path, port: int, ls_port: int, label: str, timeout: float = 600) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "AWS_", "DATABASE_URL"))}
    env.update(SERVER_PORT=str(port), AWS_ENDPOINT_URL=f"http://127.0.0.1:{ls_port}",
               PIP_NO_CACHE_DIR="1")  # as on a fresh machine: every wheel is downloaded
    log = open(clone / f"make-run-{label}.log", "w")
    started = time.monotonic()
    process = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        while not healthy(port):
            if process.poll() is not None:
                raise RuntimeError(f"make run exited with {process.returncode}; see {log.name}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"no healthy API after {timeout}s; see {log.name}")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        # make returns on Ctrl-C before the launcher has finished stopping its children:
        # wait until the API and LocalStack ports are free before the next start.
        deadline = time.monotonic() + 90
        while (port_open(port) or port_open(ls_port)) and time.monotonic() < deadline:
            time.sleep(0.2)
    return elapsed


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep the clone for inspection")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="zemeow-startup-"))
    clone = workdir / "zemeow"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    port, ls_port = free_port(), free_port()
    try:
        first = one_start(clone, port, ls_port, "first")
        print(f"make run, first start on a clean clone (venvs, LocalStack, PostgreSQL from scratch): "
              f"{first:.1f}s to GET /health 200", flush=True)
        second = one_start(clone, port, ls_port, "second")
        print(f"make run, second start: {second:.1f}s to GET /health 200", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"clone kept in {clone}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
