"""Finding 5: the emulator's control API pairs and drives any session, so it is refused
in production and answers only requests that carry `X-Emulator-Token: <EMULATOR_TOKEN>`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chalicelib.config import load_settings
from chalicelib.errors import ConfigError
from devstack import PROJECT_ROOT
from devstack.processes import free_port
from tests.support.runner_harness import http_json, start_runner


def test_production_refuses_the_emulator_driver_naming_the_variable():
    env = {"ENVIRONMENT": "production", "WHATSAPP_DRIVER": "emulator", "EMULATOR_TOKEN": "x" * 32}
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    assert any(p.startswith("WHATSAPP_DRIVER=emulator") and "production" in p for p in refused.value.problems)
    # the neonize driver, and the emulator outside production, are fine
    assert load_settings({**env, "WHATSAPP_DRIVER": "neonize"}).whatsapp_driver == "neonize"
    assert load_settings({**env, "ENVIRONMENT": "staging"}).whatsapp_driver == "emulator"


def test_the_runner_process_refuses_the_emulator_in_production(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WEBHOOK_ALLOW_PRIVATE", "DATABASE_URL")}
    env.update({"ENVIRONMENT": "production", "WHATSAPP_DRIVER": "emulator", "EMULATOR_TOKEN": "x" * 32,
                "DATA_DIR": str(tmp_path), "METRICS_PORT": str(free_port()), "EMULATOR_PORT": str(free_port())})
    result = subprocess.run([sys.executable, "-m", "runner_container"], cwd=str(PROJECT_ROOT), env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "WHATSAPP_DRIVER=emulator is refused when ENVIRONMENT=production" in result.stderr


def test_a_short_emulator_token_is_refused_without_showing_it():
    with pytest.raises(ConfigError) as refused:
        load_settings({"EMULATOR_TOKEN": "guessable"})
    assert refused.value.problems == ["EMULATOR_TOKEN=<hidden>: expected at least 16 characters "
                                      "(make run generates one)"]
    assert "guessable" not in repr(load_settings({"EMULATOR_TOKEN": "guessable-but-long-enough"}))


def test_the_runner_refuses_to_start_the_emulator_without_a_token(stack):
    env = {k: v for k, v in stack.env.items() if k != "EMULATOR_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "runner_container"], cwd=str(PROJECT_ROOT),
                            env={**env, "WHATSAPP_DRIVER": "emulator", "RUNNER_ID": "no-token"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "EMULATOR_TOKEN is required when WHATSAPP_DRIVER=emulator" in result.stderr


def test_the_control_api_answers_only_with_the_token(stack, db, clean_runners, make_session):
    sid = make_session(name="token-guard")["session_id"]
    runner = start_runner(stack.env, "emu-token")
    try:
        base = f"http://127.0.0.1:{runner.emulator_port}"
        status, body = runner.emulator("GET", "/emulator/sessions")
        assert status == 200 and "sessions" in body
        token = stack.env["EMULATOR_TOKEN"]
        for headers in ({}, {"X-Emulator-Token": ""}, {"X-Emulator-Token": token[:-1]},
                        {"X-Emulator-Token": token + "x"}, {"Authorization": f"Bearer {token}"}):
            for method, path, payload in (("GET", "/emulator/sessions", None),
                                          ("POST", f"/emulator/sessions/{sid}/scan", {"phone": "5511999990001"}),
                                          ("GET", "/nowhere", None)):
                status, body = http_json(method, base + path, payload, headers=headers)
                assert status == 401, (headers, path, status, body)
                assert body["code"] == "unauthorized" and "X-Emulator-Token" in body["message"]
    finally:
        runner.stop()
