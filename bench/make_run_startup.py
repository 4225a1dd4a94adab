"""Time `make run` from a clean clone: first start (venvs installed from scratch) and second.

    python3 bench/make_run_startup.py [--keep] [--reuse-venvs]

Clones the current HEAD into a temporary folder, runs `make run` there with its own
ports (API and LocalStack, so a LocalStack you already run is not reused and the
LocalStack start is measured too), waits until GET /health answers 200, stops it with
Ctrl-C, and does it again. Uses only the standard library, so it runs with the
machine's python3 before any venv exists.

Each figure is printed beside its baseline from the same run, the parts no launcher can
skip, measured alone in the clone right after: for the second start, a bare LocalStack
start to ready plus a bare embedded PostgreSQL start; for the first start, those plus
`pip install` of the same requirements into two fresh virtual environments (no pip
cache, as on a fresh machine). Ratio = start / baseline; the target applies to it.
`--reuse-venvs` (a smoke run) links this checkout's venvs into the clone: both starts are
then warm and the install part of the baseline is left out.
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


FLOOR_SCRIPT = r'''
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, ".")
from devstack.localstack import ensure_localstack
from chalicelib.db.embedded import start_embedded
started = time.monotonic()
localstack = ensure_localstack(sys.argv[1], Path(tempfile.mkdtemp(prefix="floor-ls-")), log=lambda m: None)
ls_seconds = time.monotonic() - started
localstack.stop()
started = time.monotonic()
server = start_embedded(Path(tempfile.mkdtemp(prefix="floor-pg-")) / "pgdata")
pg_seconds = time.monotonic() - started
print(f"{ls_seconds:.3f} {pg_seconds:.3f}")
'''


def floor_services(clone: Path, ls_port: int) -> tuple[float, float]:
    """(LocalStack start to ready, embedded PostgreSQL start), alone, with the clone's venvs."""
    out = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", FLOOR_SCRIPT,
                          f"http://127.0.0.1:{ls_port}"], cwd=clone, capture_output=True, text=True,
                         timeout=300, check=True)
    ls_seconds, pg_seconds = out.stdout.split()[-2:]
    return float(ls_seconds), float(pg_seconds)


def floor_installs(clone: Path) -> float:
    """pip install of both requirement sets into fresh venvs, no cache: the download floor."""
    scratch = Path(tempfile.mkdtemp(prefix="floor-venvs-"))
    env = {**os.environ, "PIP_NO_CACHE_DIR": "1"}
    started = time.monotonic()
    try:
        for name, requirements in (("app", "requirements-dev.txt"),
                                   ("localstack", "devstack/localstack-requirements.txt")):
            subprocess.run([sys.executable, "-m", "venv", str(scratch / name)], check=True)
            subprocess.run([str(scratch / name / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", "-r", requirements], cwd=clone, env=env, check=True)
        return time.monotonic() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="store_true", help="keep the clone for inspection")
    parser.add_argument("--reuse-venvs", action="store_true",
                        help="smoke run: link this checkout's venvs into the clone (both starts warm)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="zemeow-startup-"))
    clone = workdir / "zemeow"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    if args.reuse_venvs:
        for venv in (".venv", ".venv-localstack"):
            (clone / venv).symlink_to((ROOT / venv).resolve())
    port, ls_port = free_port(), free_port()
    try:
        first = one_start(clone, port, ls_port, "first")
        second = one_start(clone, port, ls_port, "second")
        ls_seconds, pg_seconds = floor_services(clone, ls_port)
        warm_floor = ls_seconds + pg_seconds
        install = None if args.reuse_venvs else floor_installs(clone)
        cold_floor = warm_floor + (install or 0.0)
        what = "venvs linked (--reuse-venvs)" if args.reuse_venvs else "venvs, LocalStack, PostgreSQL from scratch"
        print(f"make run, first start on a clean clone ({what}): {first:.1f}s to GET /health 200; "
              f"baseline (same run) {cold_floor:.1f}s = "
              + (f"pip installs {install:.1f}s + " if install is not None else "")
              + f"LocalStack {ls_seconds:.1f}s + PostgreSQL {pg_seconds:.1f}s; ratio x{first / cold_floor:.2f}",
              flush=True)
        print(f"make run, second start: {second:.1f}s to GET /health 200; baseline (same run) {warm_floor:.1f}s = "
              f"LocalStack {ls_seconds:.1f}s + PostgreSQL {pg_seconds:.1f}s; ratio x{second / warm_floor:.2f}",
              flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"clone kept in {clone}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
