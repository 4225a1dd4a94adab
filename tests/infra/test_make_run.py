"""`python -m devstack run` (what `make run` calls): up, healthy, and nothing left after Ctrl-C."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from chalicelib.aws_clients import make_client
from devstack import PROJECT_ROOT
from devstack.local_env import read_env_file
from devstack.messaging_stack import delete_stack
from devstack.processes import free_port, port_in_use
from tests.support.launched import Launched


@pytest.mark.slow
def test_make_run_starts_everything_and_ctrl_c_stops_everything(stack, settings, tmp_path):
    port = free_port()
    prefix = f"zr{os.getpid()}"
    env = {**stack.env, "SERVER_PORT": str(port), "DATA_DIR": str(tmp_path), "QUEUE_PREFIX": prefix}
    for name in ("DATABASE_URL", "ADMIN_API_KEY", "ENCRYPTION_KEY"):
        env.pop(name)  # the embedded server and generated keys, as on a fresh machine
    launched = Launched(env, sigint_ignored=True)  # as from a script's `make run &`: Ctrl-C still stops it
    try:
        output = launched.wait_for_output(r"Ctrl-C stops everything", timeout=120)
        assert f"http://127.0.0.1:{port}" in output
        local_env = read_env_file(tmp_path / "local.env")
        assert f"admin key:  {local_env['ADMIN_API_KEY']}" in output
        assert oct((tmp_path / "local.env").stat().st_mode & 0o777) == "0o600"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            assert response.status == 200
        assert f"console:    http://127.0.0.1:{port}/console" in output  # issue 13: printed next to the key
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/console", timeout=10) as response:
            assert response.status == 200 and b"console/assets/main.js" in response.read()
        launched.interrupt()
        assert launched.wait_stopped(timeout=60) == 0, launched.output[-3000:]
        assert "stopped" in launched.output
    finally:
        launched.kill()
        delete_stack(make_client("cloudformation", settings), f"{prefix}-messaging")
        delete_stack(make_client("cloudformation", settings), f"{prefix}-media")
        s3 = make_client("s3", settings)  # the stack retains its bucket (DeletionPolicy: Retain)
        for bucket in s3.list_buckets()["Buckets"]:
            if bucket["Name"].startswith(f"{prefix}-media-"):
                s3.delete_bucket(Bucket=bucket["Name"])
    assert not port_in_use(port)
    # the embedded PostgreSQL of that data dir is stopped too
    assert not (tmp_path / "pgdata" / "postmaster.pid").exists()


def test_make_run_refuses_a_taken_port_with_one_line(stack, tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = {**stack.env, "SERVER_PORT": str(port), "DATA_DIR": str(tmp_path)}
        result = subprocess.run([sys.executable, "-m", "devstack", "run"], cwd=str(PROJECT_ROOT),
                                env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stdout
    assert not (tmp_path / "pgdata").exists()  # failed before starting anything


def test_make_run_refuses_bad_configuration(stack, tmp_path):
    env = {**stack.env, "QR_CODE_TIMEOUT": "forever", "DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "devstack", "run"], cwd=str(PROJECT_ROOT),
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "QR_CODE_TIMEOUT=forever" in result.stdout


def test_make_run_reports_an_unusable_data_dir(stack, tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    env = {**stack.env, "DATA_DIR": str(blocked), "SERVER_PORT": str(free_port())}
    env.pop("DATABASE_URL")
    result = subprocess.run([sys.executable, "-m", "devstack", "run"], cwd=str(PROJECT_ROOT),
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert str(blocked) in result.stdout
