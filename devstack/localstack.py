"""LocalStack without Docker: reuse one that answers, else start it from its own venv.

Started as `localstack.runtime.main` on 127.0.0.1:4566 (or the port in AWS_ENDPOINT_URL)
through `devstack/localstack_loopback.py`, which makes it listen on 127.0.0.1 only (4.13.1
ignores the host of GATEWAY_LISTEN and would listen on every interface), waited for until
its health endpoint reports SQS and CloudFormation available, and stopped with its whole
process group.

Only the launcher that started it stops it: a stack that found one answering leaves it
alone. The launcher that started it stops it on exit even if another stack still uses
it (there is no registry of users): start the longest-lived stack first, or run a
LocalStack of your own and point every stack at it with AWS_ENDPOINT_URL.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from devstack import PROJECT_ROOT
from devstack.processes import Child, die_with_parent

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
SERVICES = "sqs,cloudformation,secretsmanager,s3,sts,iam,cloudwatch"
REQUIRED = ("sqs", "cloudformation", "secretsmanager", "s3")
LOCALSTACK_PYTHON = PROJECT_ROOT / ".venv-localstack" / "bin" / "python"
LOOPBACK_LAUNCHER = Path(__file__).with_name("localstack_loopback.py")


class LocalStackError(RuntimeError):
    pass


def health(endpoint: str, timeout: float = 2.0) -> dict | None:
    """LocalStack's health document, or None when nothing (or not LocalStack) answers."""
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/_localstack/health", timeout=timeout) as r:
            return json.loads(r.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def is_ready(endpoint: str) -> bool:
    doc = health(endpoint)
    if not doc:
        return False
    services = doc.get("services", {})
    return all(services.get(name) in ("available", "running") for name in REQUIRED)


@dataclass
class LocalStackHandle:
    endpoint: str
    process: subprocess.Popen | None  # None: someone else's LocalStack, left running
    log_path: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None:
            Child("localstack", self.process).stop(timeout=timeout)


def ensure_localstack(endpoint: str | None, state_dir: Path, *, timeout: float = 120.0,
                      log=print, services: str = SERVICES) -> LocalStackHandle:
    """LocalStack on `endpoint`: the one answering there, else one started with `services`
    (devstack's by default; a test that needs more, e.g. lambda and apigateway for `chalice
    deploy`, starts its own on another port with them)."""
    endpoint = endpoint or DEFAULT_ENDPOINT
    if is_ready(endpoint):
        log(f"LocalStack already answers on {endpoint}; using it")
        return LocalStackHandle(endpoint, None)
    parsed = urlparse(endpoint)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise LocalStackError(f"AWS_ENDPOINT_URL={endpoint} does not answer and is not local; "
                              "start LocalStack there or unset AWS_ENDPOINT_URL")
    if health(endpoint) is not None:
        raise LocalStackError(f"something on {endpoint} answers but lacks {', '.join(REQUIRED)}")
    if not LOCALSTACK_PYTHON.exists():
        raise LocalStackError(f"{LOCALSTACK_PYTHON} is missing; run `make venvs` first")
    port = parsed.port or 4566
    state_dir.mkdir(parents=True, exist_ok=True)
    # LocalStack keeps ephemeral state (CloudWatch's metrics.db among it) in
    # `$TMPDIR/localstack` and clears that folder when it starts and when it stops: with the
    # default /tmp, a second LocalStack on the machine (another stack, a test's own) wipes
    # the first one's CloudWatch ("unable to open database file"). One tmp per state dir.
    private_tmp = state_dir / "tmp"
    private_tmp.mkdir(exist_ok=True)
    log_path = state_dir / "localstack.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")},
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": services,
        "LOCALSTACK_VOLUME_DIR": str(state_dir / "volume"),
        "FILESYSTEM_ROOT": str(state_dir / "filesystem"),
        "DNS_ADDRESS": "0",  # no DNS server on port 53
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",  # no analytics calls home
        "SQS_ENDPOINT_STRATEGY": "path",
        "TMPDIR": str(private_tmp),
    }
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(LOCALSTACK_PYTHON), str(LOOPBACK_LAUNCHER)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=str(state_dir),
            start_new_session=True, preexec_fn=die_with_parent,
        )
    handle = LocalStackHandle(endpoint, process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackError(f"LocalStack exited with code {process.returncode}; "
                                  f"last lines of {log_path}:\n{_tail(log_path)}")
        if is_ready(endpoint):
            return handle
        time.sleep(0.25)
    handle.stop()
    raise LocalStackError(f"LocalStack did not become ready within {timeout:g}s; see {log_path}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
