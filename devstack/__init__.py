"""Local stack tooling: runs zemeow on one machine with nothing but Python.

Not part of any deployed artefact: the Lambda package holds `app.py` + `chalicelib`,
the runner image holds `chalicelib` + `runner_container`.
"""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def offline_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for processes that must not reach off the machine (those the test suite and
    the benchmarks start): PYTHONPATH loads `offline_site/sitecustomize.py` (no DNS query
    leaves the machine, connections to loopback only) and the project itself."""
    site = str(PROJECT_ROOT / "devstack" / "offline_site")
    parts = [site, str(PROJECT_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(":") if p and p != site]
    return {**env, "PYTHONPATH": ":".join(dict.fromkeys(parts))}
