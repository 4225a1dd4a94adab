"""Name resolution is injected, never switched on by ENVIRONMENT=test: the test stack's
container gets loopback-only resolvers, the processes tests start load the offline guard
from devstack/offline_site, and one test runs the real resolver path (the system's
getaddrinfo, no guard) against a name this machine answers itself, `localhost`."""
from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading

import pytest

from chalicelib.netguard import offline
from chalicelib.netguard.http import OutboundHttp
from chalicelib.netguard.offline import loopback_resolver, offline_resolver
from chalicelib.netguard.resolve import NetPolicy, Refused, Unresolvable
from devstack import PROJECT_ROOT, offline_env


@pytest.fixture
def real_dns(monkeypatch):
    """The system resolver itself, as production has it (this process's guard undone)."""
    monkeypatch.setattr(socket, "getaddrinfo", offline._real_getaddrinfo)


@pytest.fixture
def loopback_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"via localhost"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_real_resolver_path_answers_localhost_and_the_guard_judges_the_answer(real_dns, loopback_server):
    policy = NetPolicy(allow_private=True)  # the default resolver: socket.getaddrinfo at call time
    infos = policy.resolve("localhost", loopback_server)
    assert infos and all(info[4][0] in ("127.0.0.1", "::1") for info in infos)
    response = OutboundHttp(policy, user_agent="zemeow-test").request("GET", f"http://localhost:{loopback_server}/",
                                                                      timeout=10)
    assert response.status == 200 and response.body == b"via localhost"
    # production's rule on the same answer: loopback is not a place to send webhooks
    with pytest.raises(Refused) as refused:
        NetPolicy(allow_private=False).resolve("localhost", loopback_server)
    assert "localhost" in refused.value.message and not isinstance(refused.value, Unresolvable)


def test_the_loopback_resolver_answers_loopback_and_refuses_the_rest_without_a_lookup(monkeypatch):
    def no_lookup(*args, **kwargs):
        raise AssertionError(f"looked up {args[0]!r}")

    assert {info[4][0] for info in loopback_resolver("localhost", 80)} <= {"127.0.0.1"}
    assert loopback_resolver("127.0.0.5", 80)[0][4][0] == "127.0.0.5"
    monkeypatch.setattr(offline, "_real_getaddrinfo", no_lookup)
    for host in ("example.com", "proxy.invalid"):  # no such name here (a saved proxy may name one)
        with pytest.raises(socket.gaierror):
            loopback_resolver(host, 80)
    for host in ("10.0.0.1", "93.184.216.34", "169.254.169.254", "2001:db8::1"):
        with pytest.raises(Refused):
            loopback_resolver(host, 80)


def test_the_offline_resolver_fails_names_like_nxdomain_without_a_lookup(monkeypatch):
    monkeypatch.setattr(offline, "_real_getaddrinfo", lambda *a, **k: pytest.fail(f"looked up {a[0]!r}"))
    with pytest.raises(socket.gaierror):
        offline_resolver("no-such-host.example", 443)
    with pytest.raises(Unresolvable):  # what the guard makes of it: "does not resolve", not "refused"
        NetPolicy(allow_private=True, resolver=offline_resolver).resolve("no-such-host.example", 443)


def test_the_test_containers_policies_use_the_injected_resolvers(container):
    assert container.outbound_policy.resolver is offline_resolver
    assert container.proxy_policy.resolver is loopback_resolver


PROBE = r"""
import errno, socket, sys
from chalicelib.bootstrap import Container
from chalicelib.config import load_settings
real = socket.getaddrinfo
Container(load_settings({"ENVIRONMENT": "test"})).settings  # used to swap the resolver: no more
print("settings-swapped-resolver", socket.getaddrinfo is not real)
try:
    socket.getaddrinfo("example.com", 443)
    print("lookup", "answered")
except socket.gaierror:
    print("lookup", "refused")
jailed = socket.socket.connect.__qualname__.startswith("_jail")
print("jailed", jailed)
if jailed:  # only then: the jail refuses before any packet
    with socket.socket() as sock:
        try:
            sock.connect(("192.0.2.1", 9))
            print("connect", "made")
        except OSError as exc:
            print("connect", errno.errorcode.get(exc.errno))
"""


def test_processes_started_by_tests_resolve_offline_and_connect_to_loopback_only(stack):
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=str(PROJECT_ROOT), env=offline_env(stack.env),
                         capture_output=True, text=True, timeout=60)
    answers = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    assert answers.get("settings-swapped-resolver") == "False", run.stdout + run.stderr
    assert answers.get("lookup") == "refused" and answers.get("jailed") == "True", run.stdout + run.stderr
    assert answers.get("connect") == "ENETUNREACH", run.stdout + run.stderr
    # without the site folder (production): no guard at all, and ENVIRONMENT=test changes nothing
    bare = {k: v for k, v in stack.env.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", PROBE.split("try:")[0] + "print('jailed', socket.socket.connect."
                          "__qualname__.startswith('_jail'))"], cwd=str(PROJECT_ROOT), env=bare,
                         capture_output=True, text=True, timeout=60)
    assert "settings-swapped-resolver False" in run.stdout and "jailed False" in run.stdout, run.stdout + run.stderr


def test_no_production_module_branches_on_the_test_environment():
    for folder in ("chalicelib", "runner_container"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert 'environment == "test"' not in text and "ENVIRONMENT=test" not in text, path
