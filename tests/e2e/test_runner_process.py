"""The runner process: registers, heartbeats, and stops cleanly on SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import sys

from chalicelib.repositories.runners import RunnerRepository
from devstack import PROJECT_ROOT
from tests.support.runner_harness import wait_for


def _start_runner(env, runner_id):
    return subprocess.Popen([sys.executable, "-m", "runner_container"], cwd=str(PROJECT_ROOT),
                            env={**env, "RUNNER_ID": runner_id}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_runner_registers_beats_and_stops_on_sigterm(stack, db, clean_runners):
    runners = RunnerRepository(db)
    process = _start_runner(stack.env, "runner-under-test")
    try:
        first = wait_for(lambda: runners.get("runner-under-test"))
        assert first["driver"] == "emulator" and first["stopped_at"] is None
        # heartbeat_at moves forward (interval is 0.5s in tests)
        wait_for(lambda: runners.get("runner-under-test")["heartbeat_at"] > first["heartbeat_at"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    row = runners.get("runner-under-test")
    assert row["stopped_at"] is not None
    assert runners.live(60) == []
    assert "runner stopped" in process.stdout.read()


def test_runner_refuses_bad_configuration_naming_the_variable(stack):
    env = {**stack.env, "RUNNER_HEARTBEAT_INTERVAL": "often"}
    result = subprocess.run([sys.executable, "-m", "runner_container"], cwd=str(PROJECT_ROOT),
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "RUNNER_HEARTBEAT_INTERVAL" in result.stderr


def test_runner_exits_when_the_database_is_unreachable(stack):
    env = {**stack.env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "DB_CONNECT_TIMEOUT": "1s"}
    result = subprocess.run([sys.executable, "-m", "runner_container"], cwd=str(PROJECT_ROOT),
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "runner cannot start" in result.stdout + result.stderr
