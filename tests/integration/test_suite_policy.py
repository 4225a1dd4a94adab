"""The suite's own rules hold: a skip fails the run, the timeout plugin is required, the
tools the suite needs are on PATH (make test installs them)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pytest(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.skip_policy", "-q", "-p", "no:cacheprovider",
                           *args, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_not_on_the_allow_list_fails_the_run(tmp_path):
    run = _pytest(tmp_path, "import pytest\n\ndef test_ok():\n    pass\n\n"
                            "def test_skipped():\n    pytest.skip('ffmpeg is not installed')\n")
    assert run.returncode == 1, run.stdout
    assert "SKIPPED" in run.stdout and "test_skipped: Skipped: ffmpeg is not installed" in run.stdout


def test_a_module_level_skip_and_an_xfail_fail_the_run_too(tmp_path):
    run = _pytest(tmp_path, "import pytest\n\n@pytest.mark.xfail(reason='neonize cannot do it offline')\n"
                            "def test_x():\n    assert False\n")
    assert run.returncode == 1 and "XFAILED" in run.stdout, run.stdout
    (tmp_path / "test_other.py").write_text("import pytest\npytest.skip('later', allow_module_level=True)\n")
    run = _pytest(tmp_path, "def test_ok():\n    pass\n")
    assert run.returncode == 1 and "later" in run.stdout, run.stdout


def test_a_run_without_skips_passes(tmp_path):
    run = _pytest(tmp_path, "def test_ok():\n    pass\n")
    assert run.returncode == 0, run.stdout


def test_an_allowed_skip_passes_only_with_its_reason():
    from tests.support.skip_policy import allowed

    node = "tests/security/test_local_bindings.py::test_x"
    assert allowed(node, "this machine has no non-loopback IPv4 address")
    assert not allowed(node, "something else")
    assert not allowed("tests/integration/test_wa_messages.py::test_audio", "this machine has no non-loopback IPv4 address")


def test_the_timeout_plugin_is_required_not_optional():
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:timeout", "--co", "-q",
                          "tests/integration/test_suite_policy.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "pytest-timeout" in run.stdout + run.stderr


def test_the_tools_the_suite_runs_are_installed():
    """`make test` installs them (Makefile `tools`): a missing one would otherwise be a skip."""
    assert shutil.which("ffmpeg"), "ffmpeg is missing: run `make test` (it installs it) or apt-get install ffmpeg"


def test_make_stops_when_pip_fails():
    makefile = (ROOT / "Makefile").read_text()
    assert "|| true" not in "\n".join(line for line in makefile.splitlines() if "pip install" in line)
    dry = subprocess.run(["make", "-n", "-B", "PY=false", ".venv/.installed"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert "exit 1" in dry.stdout, dry.stdout
