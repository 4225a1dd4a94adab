"""The runner image's contents, run without Docker (this machine has no Docker engine).

What `runner_container/Dockerfile` puts in the image is rebuilt here: the wheels of
`runner_container/requirements.txt` alone (pip --target, binary wheels only, as the
Dockerfile's build stage), and only `chalicelib/` + `runner_container/` as the app. The
runner then starts with the image's command (`python -m runner_container`, no
site-packages: `-S`) against the test stack, the Dockerfile's HEALTHCHECK command turns
healthy, and SIGTERM (the image's STOPSIGNAL) stops it cleanly within ECS's StopTimeout.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _dockerfile_json(kind: str) -> list[str]:
    text = re.sub(r"\\\n", " ", (ROOT / "runner_container" / "Dockerfile").read_text())
    line = [ln.strip() for ln in text.splitlines() if ln.strip().upper().startswith(kind + " ")][-1]
    return json.loads(line[line.index("["):])


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner-image")
    site, app = root / "venv-site", root / "app"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                             "--only-binary=:all:", "--target", str(site),
                             "-r", str(ROOT / "runner_container" / "requirements.txt")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "Dockerfile")
    for name in ("chalicelib", "runner_container"):  # what the Dockerfile COPYs
        shutil.copytree(ROOT / name, app / name, ignore=ignore)
    return {"site": site, "app": app}


def test_image_contents_run_the_runner_healthy_and_stop_on_sigterm(image_root, stack):
    cmd = _dockerfile_json("CMD")
    text = (ROOT / "runner_container" / "Dockerfile").read_text()
    health_code = re.search(r'HEALTHCHECK[^\[]*\[\s*"python",\s*"-c",\s*"(.+)"\]', text.replace("\\\n", " ")).group(1)
    metrics_port = free_port()
    env = {**stack.env, "PYTHONPATH": str(image_root["site"]), "METRICS_PORT": str(metrics_port),
           "EMULATOR_PORT": str(free_port()), "WHATSAPP_DRIVER": "emulator", "RUNNER_ID": "image-runner",
           "PYTHONDONTWRITEBYTECODE": "1"}
    assert cmd[0] == "python"
    process = subprocess.Popen([sys.executable, "-S", *cmd[1:]], cwd=image_root["app"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, healthy = time.monotonic() + 60, False
        while time.monotonic() < deadline and process.poll() is None:
            probe = subprocess.run([sys.executable, "-S", "-c", health_code], env=env, capture_output=True,
                                   timeout=10)
            if probe.returncode == 0:
                healthy = True
                break
            time.sleep(0.5)
        assert healthy, "HEALTHCHECK never passed; runner said:\n" + _drain(process)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)  # runner.yaml's StopTimeout
        output = process.stdout.read()
        print(f"\nrunner stopped {time.monotonic() - started:.1f}s after SIGTERM, exit {code}")
        assert code == 0, output[-3000:]
        assert "runner stopped" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _drain(process: subprocess.Popen) -> str:
    if process.poll() is None:
        process.kill()
    return (process.stdout.read() or "")[-3000:]
