"""No hidden skips: a skipped or xfailed test fails the run unless it is allowed here.

"407 passed, 1 skipped" reads as "it all works"; the skip was the one path nobody ran.
So every skip (and every xfail or xpass: a test that is expected to fail proves nothing)
makes `make test` exit 1, naming the test and its reason, unless it matches an entry of
`ALLOWED` below: a node id pattern (fnmatch) and the reason the skip must give. An entry
says why the skip is honest (the condition is a property of the machine, not of the
code) and is documented in docs/DEVELOPING.md ("Skips"). The hooks are imported by
tests/conftest.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

import pytest


@dataclass(frozen=True)
class AllowedSkip:
    nodeid: str  # fnmatch pattern
    reason: str  # a substring the skip's reason must contain
    why: str  # why skipping is honest here


ALLOWED: tuple[AllowedSkip, ...] = (
    AllowedSkip("tests/security/test_local_bindings.py::*", "this machine has no non-loopback IPv4 address",
                "the test proves nothing listens on the machine's other address; without one there is "
                "nothing to probe (a container with loopback only)"),
    AllowedSkip("tests/security/test_local_bindings.py::test_embedded_postgresql_listens_on_a_unix_socket_only",
                "DATABASE_URL names an external server",
                "a run against an external PostgreSQL has no embedded server whose sockets could be checked"),
)

_found: list[tuple[str, str, str]] = []  # (nodeid, outcome, reason) not allowed


def _reason(report: Any) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail or "xfail")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def allowed(nodeid: str, reason: str) -> bool:
    return any(fnmatch(nodeid, entry.nodeid) and entry.reason in reason for entry in ALLOWED)


def _check(report: Any) -> None:
    outcome = None
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.skipped:
        outcome = "skipped"
    if outcome is None:
        return
    reason = _reason(report)
    if outcome != "skipped" or not allowed(report.nodeid, reason):
        _found.append((report.nodeid, outcome, reason))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _check(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _check(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _found:
        return
    terminalreporter.section("skips and xfails not on the allow-list (tests/support/skip_policy.py)", red=True)
    for nodeid, outcome, reason in dict.fromkeys(_found):
        terminalreporter.line(f"{outcome.upper()} {nodeid}: {reason}", red=True)
    terminalreporter.line("a test that does not run proves nothing: make it run, or allow it in "
                          "tests/support/skip_policy.py with the reason it is honest", red=True)
