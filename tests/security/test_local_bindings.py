"""Finding 10: everything `make run` starts listens on loopback only.

Each check connects to this machine's own non-loopback address (never another host) and
expects the connection refused, while 127.0.0.1 answers on the same port.
"""
from __future__ import annotations

import socket
import subprocess
import pytest

from devstack.localstack import ensure_localstack, health
from devstack.processes import free_port
from tests.support.runner_harness import http_json, start_runner


def non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback (`ip -4 addr`), or None."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            address = parts[parts.index("inet") + 1].split("/")[0]
            if not address.startswith("127."):
                return address
    # no `ip`: the address the kernel would route from (a UDP connect sends nothing)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only a route lookup
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


ADDRESS = non_loopback_address()
needs_address = pytest.mark.skipif(ADDRESS is None, reason="this machine has no non-loopback IPv4 address")


def _connects(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        try:
            sock.connect((host, port))
            return True
        except ConnectionRefusedError:
            return False


def assert_loopback_only(port: int, what: str) -> None:
    assert _connects("127.0.0.1", port), f"{what} does not answer on 127.0.0.1:{port}"
    assert not _connects(ADDRESS, port), f"{what} answers on {ADDRESS}:{port}: it listens beyond loopback"


@needs_address
@pytest.mark.slow
def test_localstack_started_by_the_launcher_listens_on_loopback_only(tmp_path):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    handle = ensure_localstack(endpoint, tmp_path / "localstack", log=lambda _m: None)
    try:
        assert handle.started_here and health(endpoint) is not None
        assert_loopback_only(port, "LocalStack")
    finally:
        handle.stop()  # only the one started here; the shared one on 4566 is never touched
    assert health(endpoint) is None


@needs_address
def test_runner_metrics_and_emulator_listen_on_loopback_only(stack, clean_runners):
    runner = start_runner(stack.env, "bind-default")
    try:
        assert_loopback_only(runner.metrics_port, "the runner's /metrics and /healthz")
        assert_loopback_only(runner.emulator_port, "the emulator's control API")
    finally:
        runner.stop()


@needs_address
def test_runner_bind_host_opens_metrics_where_the_container_needs_them(stack, clean_runners):
    runner = start_runner(stack.env, "bind-any", RUNNER_BIND_HOST="0.0.0.0")
    try:
        status, body = http_json("GET", f"http://{ADDRESS}:{runner.metrics_port}/healthz")
        assert status == 200 and body["ok"] is True
        assert not _connects(ADDRESS, runner.emulator_port)  # the emulator stays on loopback regardless
    finally:
        runner.stop()


@needs_address
def test_chalice_local_listens_on_loopback_only(stack):
    port = free_port()
    child = stack.start_api(port)
    try:
        assert_loopback_only(port, "the API (chalice local)")
    finally:
        child.stop()
        stack.children.remove(child)


def test_embedded_postgresql_listens_on_a_unix_socket_only(stack):
    if stack.embedded is None:
        pytest.skip("DATABASE_URL names an external server: the embedded one is not in use")
    pid = stack.embedded.get_pid()
    assert pid
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10).stdout
    assert f"pid={pid}," not in listening, listening  # no TCP socket at all, on any address
    assert "host=/" in stack.env["DATABASE_URL"]  # the clients reach it through its socket directory
