"""Per-session proxies: GET/POST /sessions/{id}/proxy and POST /sessions/{id}/proxy/test.

The probe is tested against real `pproxy` servers (HTTP, HTTPS, SOCKS5, with and without
username/password), each a subprocess on a free loopback port. Network rule: nothing
leaves loopback. The pproxy subprocesses run with a loopback-only resolver
(`PPROXY_LOOPBACK_ONLY` below): a name that is not `localhost` fails with EAI_NONAME
inside the proxy, exactly as an NXDOMAIN would, without any DNS query leaving the machine
(this machine's resolver is a non-loopback nameserver, so a real lookup of even a
`.invalid` name would send a packet). The test process itself runs under the same guard
(`_loopback_only_dns`), which proves the API never resolves the target itself.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from chalicelib.netguard.resolve import NetPolicy
from chalicelib.services.proxy import ProxyConfig, ProxyProber
from chalicelib.services.sessions import PROXY_CONTEXT
from devstack.processes import Child, free_port, start_child
from tests.conftest import PROJECT_ROOT, session_headers

PPROXY_LOOPBACK_ONLY = r'''
import asyncio, errno, ipaddress, socket, sys

_real_getaddrinfo = socket.getaddrinfo


def _verdict(host):
    """True: loopback literal; False: other literal; None: a name."""
    if host in (None, ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return None


def getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name == "localhost":
        name = "127.0.0.1"
    verdict = _verdict(name)
    if verdict is None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    if verdict is False:
        raise OSError(errno.ENETUNREACH, "Network is unreachable (loopback-only test proxy)")
    return _real_getaddrinfo(name, port, *args, **kwargs)


_real_open_connection = asyncio.open_connection


async def open_connection(host=None, port=None, **kwargs):
    if _verdict(host) is False:
        raise OSError(errno.ENETUNREACH, "Network is unreachable (loopback-only test proxy)")
    return await _real_open_connection(host=host, port=port, **kwargs)


socket.getaddrinfo = getaddrinfo
asyncio.open_connection = open_connection
from pproxy.server import main
main()
'''

USER, PASSWORD = "alice", "s3cret-Proxy-pw"


# -- loopback-only guard for this process ------------------------------------------------
@pytest.fixture(autouse=True)
def _loopback_only_dns(monkeypatch):
    real = socket.getaddrinfo

    def guarded(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in (None, "localhost"):
            return real(host, port, *args, **kwargs)
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: no DNS lookups ({name})") from None
        return real(host, port, *args, **kwargs)  # a literal: parsed locally, no lookup

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


# -- real servers ------------------------------------------------------------------------
def _wait_accepting(port: int, child: Child, log: Path, deadline: float = 15.0) -> None:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not accept connections on {port} within {deadline}s")


def _make_cert(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zemeow test proxy")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "proxy.crt", directory / "proxy.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def pproxies(tmp_path_factory):
    """Real pproxy servers; `--auth 0` so that one good login does not authorise the IP."""
    workdir = tmp_path_factory.mktemp("pproxy")
    cert, key = _make_cert(workdir)
    specs = {
        "http": ("http", None, []),
        "http_auth": ("http", f"{USER}:{PASSWORD}", []),
        "socks5": ("socks5", None, []),
        "socks5_auth": ("socks5", f"{USER}:{PASSWORD}", []),
        "https": ("http+ssl", None, ["--ssl", f"{cert},{key}"]),
    }
    children: list[tuple[Child, int, Path]] = []
    ports: dict[str, int] = {}
    try:
        for name, (scheme, auth, extra) in specs.items():
            port = free_port()
            # pproxy takes its username:password in the URI fragment (its userinfo is a cipher)
            uri = f"{scheme}://127.0.0.1:{port}" + (f"#{auth}" if auth else "")
            log = workdir / f"{name}.log"
            with log.open("wb") as sink:
                child = start_child(f"pproxy-{name}", [sys.executable, "-c", PPROXY_LOOPBACK_ONLY, "-l", uri,
                                                       "--auth", "0", *extra],
                                    env={"PATH": "/usr/bin:/bin"}, cwd=str(PROJECT_ROOT),
                                    stdout=sink, stderr=subprocess.STDOUT)
            children.append((child, port, log))
            ports[name] = port
        for child, port, log in children:
            _wait_accepting(port, child, log)
        ports["cert"] = cert  # type: ignore[assignment]
        yield ports
    finally:
        for child, _port, _log in children:
            child.stop(timeout=5)


@pytest.fixture(scope="module")
def target():
    """A loopback TCP server that accepts and holds connections (like a TLS server waiting
    for a ClientHello)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    server.close()


@pytest.fixture
def closed_port():
    """A loopback port with nothing listening."""
    return free_port()


@pytest.fixture
def silent_proxy():
    """A "proxy" that accepts TCP connections (kernel backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


# -- helpers -----------------------------------------------------------------------------
def _post(api, path, headers, body):
    return api.post(path, headers=headers, body=json.dumps(body))


def _probe(api, created, body):
    response = _post(api, f"/sessions/{created['session_id']}/proxy/test", session_headers(created), body)
    assert response.status_code == 200, response.body
    return response.json_body


def _proxy(kind: str, pproxies, *, password: str | None = PASSWORD) -> dict:
    scheme = {"http": "http", "http_auth": "http", "socks5": "socks5", "socks5_auth": "socks5",
              "https": "https"}[kind]
    proxy = {"type": scheme, "host": "127.0.0.1", "port": pproxies[kind]}
    if kind.endswith("_auth"):
        proxy.update(username=USER, password=password)
    return proxy


# -- GET/POST /proxy ---------------------------------------------------------------------
def test_a_new_session_has_no_proxy(api, make_session):
    created = make_session()
    response = api.get(f"/sessions/{created['session_id']}/proxy", headers=session_headers(created))
    assert response.status_code == 200
    assert response.json_body == {"enabled": False, "type": None, "host": None, "port": None, "username": None,
                                  "has_password": False, "status": "inactive"}


def test_set_proxy_encrypts_and_never_returns_the_password(api, make_session, admin_headers, container, db):
    created = make_session()
    sid = created["session_id"]
    secret = "pw-" + uuid.uuid4().hex
    response = _post(api, f"/sessions/{sid}/proxy", session_headers(created),
                     {"enabled": True, "type": "socks5", "host": "Proxy.Example.com", "port": 1080,
                      "username": "bob", "password": secret})
    assert response.status_code == 200, response.body
    assert response.json_body == {"enabled": True, "type": "socks5", "host": "proxy.example.com", "port": 1080,
                                  "username": "bob", "has_password": True, "status": "active"}
    seen = [response.body]
    for path, headers in ((f"/sessions/{sid}/proxy", session_headers(created)),
                          (f"/sessions/{sid}", admin_headers), ("/sessions?limit=500", admin_headers)):
        answer = api.get(path, headers=headers)
        assert answer.status_code == 200
        seen.append(answer.body)
    assert api.get(f"/sessions/{sid}", headers=admin_headers).json_body["proxy"]["has_password"] is True
    for body in seen:
        text = body.decode() if isinstance(body, bytes) else json.dumps(body)
        assert secret not in text and "password\":" not in text.replace("has_password\":", "")
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM sessions WHERE session_id = %s", (sid,)).fetchone()
        dump = conn.execute("SELECT row_to_json(s)::text AS t FROM sessions s WHERE session_id = %s",
                            (sid,)).fetchone()["t"]
        events = conn.execute("SELECT envelope::text AS e FROM event_outbox WHERE session_id = %s",
                              (sid,)).fetchall()
        audit = conn.execute("SELECT details::text AS d FROM audit_log WHERE session_id = %s", (sid,)).fetchall()
    assert secret not in dump and secret.encode() not in bytes(row["proxy_password_enc"])
    assert all(secret not in e["e"] for e in events) and all(secret not in a["d"] for a in audit)
    box = container.secret_box()
    assert box.decrypt(row["proxy_password_enc"], context=PROXY_CONTEXT.format(sid)) == secret
    config = ProxyConfig.from_row(row, box)
    assert config.password == secret and secret not in repr(config)


def test_proxy_change_emits_session_updated(api, make_session, db):
    created = make_session()
    sid = created["session_id"]

    def updated_events():
        with db.connection() as conn:
            return conn.execute("SELECT envelope FROM event_outbox WHERE session_id = %s AND event = "
                                "'session.updated' ORDER BY created_at", (sid,)).fetchall()

    assert updated_events() == []
    response = _post(api, f"/sessions/{sid}/proxy", session_headers(created),
                     {"type": "http", "host": "proxy.corp.example", "port": 3128, "username": "u", "password": "p-1"})
    assert response.status_code == 200
    events = updated_events()
    assert len(events) == 1
    envelope = events[0]["envelope"]
    assert envelope["event"] == "session.updated" and envelope["session_id"] == sid
    assert envelope["data"] == {"changed": ["proxy"]} and "p-1" not in json.dumps(envelope)
    assert envelope["metadata"]["sequence"] >= 1
    # disabling is a change too
    assert _post(api, f"/sessions/{sid}/proxy", session_headers(created), {"enabled": False}).status_code == 200
    assert len(updated_events()) == 2


def test_omitted_password_is_kept_and_null_clears_it(api, make_session):
    created = make_session()
    path, headers = f"/sessions/{created['session_id']}/proxy", session_headers(created)
    base = {"type": "http", "host": "127.0.0.1", "port": 3128, "username": "u"}
    assert _post(api, path, headers, {**base, "password": "first"}).json_body["has_password"] is True
    assert _post(api, path, headers, {**base, "port": 3129}).json_body["has_password"] is True
    # a password never follows the proxy to another host or user
    assert _post(api, path, headers, {**base, "host": "127.0.0.2"}).json_body["has_password"] is False
    _post(api, path, headers, {**base, "password": "first"})
    cleared = _post(api, path, headers, {**base, "password": None}).json_body
    assert cleared["has_password"] is False and cleared["port"] == 3128


def test_proxy_routes_need_the_sessions_key_or_admin(api, make_session, admin_headers):
    one, other = make_session(), make_session()
    path = f"/sessions/{one['session_id']}/proxy"
    assert api.get(path, headers=admin_headers).status_code == 200
    assert api.get(path, headers=session_headers(other)).status_code == 403
    assert api.get(path).status_code == 401
    assert _post(api, path + "/test", session_headers(other), {}).status_code == 403
    assert api.get("/sessions/t-nosuchone/proxy", headers=admin_headers).status_code == 404


@pytest.mark.parametrize("body,field", [
    ({"type": "gopher", "host": "h", "port": 1}, "type"),
    ({"type": "http", "host": "h", "port": 0}, "port"),
    ({"type": "http", "host": "h", "port": 65536}, "port"),
    ({"type": "http", "host": "h", "port": "many"}, "port"),
    ({"enabled": True, "type": "socks5", "port": 1080}, "host"),
    ({"enabled": True, "type": "socks5", "host": "", "port": 1080}, "host"),
    ({"enabled": True, "host": "h"}, "port"),
    ({"host": "http://proxy.example.com:3128", "port": 3128}, "host"),
    ({"host": "proxy.example.com/path", "port": 3128}, "host"),
    ({"type": "http", "host": "h", "port": 1, "username": "a:b"}, "username"),
    ({"enabled": "maybe"}, "enabled"),
    ({"host": "h", "port": 1, "colour": "blue"}, "colour"),
])
def test_bad_proxy_is_422_naming_the_field(api, make_session, body, field):
    created = make_session()
    response = _post(api, f"/sessions/{created['session_id']}/proxy", session_headers(created), body)
    assert response.status_code == 422, response.body
    payload = response.json_body
    assert payload["code"] == "validation_failed"
    assert field in {d["field"] for d in payload["details"]}, payload


@pytest.mark.parametrize("body,field", [
    ({"target_port": 0}, "target_port"),
    ({"target_port": 70000}, "target_port"),
    ({"target_host": "http://x/"}, "target_host"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 120}, "timeout"),
    ({"proxy": {"enabled": False}}, "proxy"),
    ({"proxy": {"type": "socks4", "host": "127.0.0.1", "port": 1}}, "proxy.type"),
    ({"proxy": {"type": "http", "port": 1}}, "proxy.host"),
])
def test_bad_test_request_is_422_naming_the_field(api, make_session, body, field):
    created = make_session()
    response = _post(api, f"/sessions/{created['session_id']}/proxy/test", session_headers(created), body)
    assert response.status_code == 422, response.body
    assert field in {d["field"] for d in response.json_body["details"]}, response.json_body


def test_testing_without_a_proxy_is_409(api, make_session):
    created = make_session()
    response = _post(api, f"/sessions/{created['session_id']}/proxy/test", session_headers(created), {})
    assert response.status_code == 409 and response.json_body["code"] == "proxy_not_configured"


# -- POST /proxy/test: success -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["http", "http_auth", "socks5", "socks5_auth"])
def test_probe_opens_a_tunnel_through_a_proxy_given_in_the_body(api, make_session, pproxies, target, kind):
    created = make_session()
    result = _probe(api, created, {"proxy": _proxy(kind, pproxies), "target_host": "127.0.0.1",
                                   "target_port": target, "timeout": 5})
    assert result["ok"] is True, result
    assert result["error"] is None and 0 < result["latency_ms"] < 5000
    assert result["proxy"] == {"host": "127.0.0.1", "port": pproxies[kind]}
    assert result["target"] == {"host": "127.0.0.1", "port": target}
    assert PASSWORD not in json.dumps(result)


@pytest.mark.parametrize("kind", ["http_auth", "socks5_auth"])
def test_probe_uses_the_configured_proxy_and_its_stored_password(api, make_session, pproxies, target, kind):
    created = make_session()
    sid, headers = created["session_id"], session_headers(created)
    assert _post(api, f"/sessions/{sid}/proxy", headers, _proxy(kind, pproxies)).status_code == 200
    result = _probe(api, created, {"target_host": "127.0.0.1", "target_port": target, "timeout": 5})
    assert result["ok"] is True, result
    assert result["proxy_type"] == ("http" if kind == "http_auth" else "socks5")


def test_probe_target_may_be_named_localhost(api, make_session, pproxies, target):
    created = make_session()
    result = _probe(api, created, {"proxy": _proxy("socks5", pproxies), "target_host": "localhost",
                                   "target_port": target, "timeout": 5})
    assert result["ok"] is True, result


# -- POST /proxy/test: each failure kind ---------------------------------------------------
def test_probe_proxy_refused(api, make_session, closed_port):
    created = make_session()
    for kind in ("http", "socks5"):
        result = _probe(api, created, {"proxy": {"type": kind, "host": "127.0.0.1", "port": closed_port},
                                       "target_host": "127.0.0.1", "target_port": 443, "timeout": 3})
        assert result["ok"] is False and result["latency_ms"] is None
        assert result["error"]["code"] == "proxy_refused", result
        assert "refused" in result["error"]["message"] and str(closed_port) in result["error"]["message"]


@pytest.mark.parametrize("kind", ["http_auth", "socks5_auth"])
def test_probe_auth_failed(api, make_session, pproxies, target, kind):
    created = make_session()
    wrong = _probe(api, created, {"proxy": _proxy(kind, pproxies, password="not-the-password"),
                                  "target_host": "127.0.0.1", "target_port": target, "timeout": 3})
    assert wrong["ok"] is False and wrong["error"]["code"] == "proxy_auth_failed", wrong
    assert "refused" in wrong["error"]["message"] and "not-the-password" not in json.dumps(wrong)
    # no credentials at all, on a proxy that needs them
    missing = {"type": "http" if kind == "http_auth" else "socks5", "host": "127.0.0.1", "port": pproxies[kind]}
    anonymous = _probe(api, created, {"proxy": missing, "target_host": "127.0.0.1", "target_port": target,
                                      "timeout": 3})
    assert anonymous["error"]["code"] == "proxy_auth_failed", anonymous
    assert "requires a username and password" in anonymous["error"]["message"]
    # and the right password still works afterwards (pproxy runs with --auth 0)
    good = _probe(api, created, {"proxy": _proxy(kind, pproxies), "target_host": "127.0.0.1",
                                 "target_port": target, "timeout": 3})
    assert good["ok"] is True, good


@pytest.mark.parametrize("kind", ["http", "socks5_auth"])
def test_probe_target_unreachable_through_the_proxy(api, make_session, pproxies, closed_port, kind):
    created = make_session()
    result = _probe(api, created, {"proxy": _proxy(kind, pproxies), "target_host": "127.0.0.1",
                                   "target_port": closed_port, "timeout": 3})
    assert result["ok"] is False and result["error"]["code"] == "target_unreachable", result
    assert f"127.0.0.1:{closed_port}" in result["error"]["message"]


@pytest.mark.parametrize("kind", ["http_auth", "socks5"])
def test_probe_dns_failure_at_the_proxy(api, make_session, pproxies, kind):
    """The proxy (not the API) resolves the target: the name fails inside pproxy."""
    created = make_session()
    result = _probe(api, created, {"proxy": _proxy(kind, pproxies), "target_host": "no-such-host.invalid",
                                   "target_port": 443, "timeout": 5})
    # the proxy's answer, not our deadline: a timeout would be code `timeout`, with no "resolve"
    assert result["ok"] is False and result["error"]["code"] == "target_unreachable", result
    assert "resolve" in result["error"]["message"] and "no-such-host.invalid:443" in result["error"]["message"]


@pytest.mark.parametrize("kind", ["http", "socks5", "https"])
def test_probe_timeout_on_a_proxy_that_never_answers(api, make_session, silent_proxy, kind):
    created = make_session()
    started = time.monotonic()
    result = _probe(api, created, {"proxy": {"type": kind, "host": "127.0.0.1", "port": silent_proxy},
                                   "target_host": "127.0.0.1", "target_port": 443, "timeout": 1})
    elapsed = time.monotonic() - started
    assert result["ok"] is False and result["error"]["code"] == "timeout", result
    assert "within 1s" in result["error"]["message"]
    # it waited its timeout; the silent proxy never answers, so a probe that ignored the
    # timeout would not have returned at all (the test's own 300 s timeout would end it)
    assert elapsed >= 0.95, elapsed


def test_probe_proxy_host_that_does_not_resolve():
    # (the lookup fails in this process's loopback-only resolver guard, as NXDOMAIN would)
    result = ProxyProber(policy=NetPolicy(allow_private=True)).probe(ProxyConfig("http", "proxy.invalid", 3128),
                                                   "web.whatsapp.com", 443, 2)
    assert result["error"]["code"] == "proxy_dns_failed", result
    assert "proxy.invalid" in result["error"]["message"]


def test_the_test_stack_dials_loopback_proxies_only(api, make_session, monkeypatch):
    """The suite (and the schemathesis fuzzer) post arbitrary proxies: none may be looked up
    or dialled unless it is loopback. The test container's proxy resolver is loopback-only
    (injected, chalicelib/netguard/offline.py): a name does not exist, an address that is
    not loopback is refused."""
    def no_lookup(*args, **kwargs):
        raise AssertionError(f"looked up {args[0]!r}")

    def no_connect(self, address):
        raise AssertionError(f"connected to {address}")

    created = make_session()
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    for host in ("proxy.example.com", "a"):
        result = _probe(api, created, {"proxy": {"type": "socks5", "host": host, "port": 1080}, "timeout": 2})
        assert result["ok"] is False and result["error"]["code"] == "proxy_dns_failed", result
    for host in ("0.0.0.0", "10.0.0.1", "93.184.216.34", "2001:db8::1"):
        result = _probe(api, created, {"proxy": {"type": "socks5", "host": host, "port": 1080}, "timeout": 2})
        assert result["ok"] is False and result["error"]["code"] == "proxy_address_not_allowed", result


def test_https_proxy_with_an_untrusted_certificate_fails_tls(api, make_session, pproxies, target):
    created = make_session()
    result = _probe(api, created, {"proxy": _proxy("https", pproxies), "target_host": "127.0.0.1",
                                   "target_port": target, "timeout": 3})
    assert result["ok"] is False and result["error"]["code"] == "proxy_tls_failed", result
    assert "certificate" in result["error"]["message"]


def test_https_proxy_with_a_trusted_certificate_tunnels(pproxies, target):
    prober = ProxyProber(policy=NetPolicy(allow_private=True),
                         tls_context=lambda: ssl.create_default_context(cafile=str(pproxies["cert"])))
    result = prober.probe(ProxyConfig("https", "127.0.0.1", pproxies["https"]), "127.0.0.1", target, 3)
    assert result["ok"] is True, result


# -- production policy: no proxies on private addresses ----------------------------------
def test_production_refuses_private_proxy_addresses_before_connecting(monkeypatch):
    def no_connect(self, address):
        raise AssertionError(f"connected to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    prober = ProxyProber(policy=NetPolicy(allow_private=False))
    for host in ("127.0.0.1", "169.254.169.254", "10.0.0.1", "192.168.1.1", "::1"):
        result = prober.probe(ProxyConfig("http", host, 3128), "web.whatsapp.com", 443, 2)
        assert result["error"]["code"] == "proxy_address_not_allowed", result


def test_production_refuses_saving_a_private_proxy(api, make_session, container):
    created = make_session()
    container.__dict__["proxy_policy"] = NetPolicy(allow_private=False)  # PROXY_ALLOW_PRIVATE=false
    path, headers = f"/sessions/{created['session_id']}/proxy", session_headers(created)
    for host in ("10.1.2.3", "169.254.169.254", "localhost", "127.0.0.1"):
        response = _post(api, path, headers, {"type": "http", "host": host, "port": 3128})
        assert response.status_code == 422, response.body
        assert response.json_body["code"] == "proxy_address_not_allowed"
        assert response.json_body["details"][0]["field"] == "host"
    assert _post(api, path, headers, {"type": "http", "host": "93.184.216.34", "port": 3128}).status_code == 200  # saved, never dialled


# -- what the runner uses ----------------------------------------------------------------
def test_proxy_address_for_neonize():
    assert ProxyConfig("socks5", "127.0.0.1", 1080).address() == "socks5://127.0.0.1:1080"
    assert ProxyConfig("http", "p.example", 3128, "u:x", "p@ss/w").address() == \
        "http://u%3Ax:p%40ss%2Fw@p.example:3128"
    assert ProxyConfig("https", "::1", 443, "u").address() == "https://u@[::1]:443"


def test_openapi_documents_the_proxy_routes(api):
    document = api.get("/openapi.json").json_body
    assert set(document["paths"]["/sessions/{session_id}/proxy"]) >= {"get", "post"}
    operation = document["paths"]["/sessions/{session_id}/proxy/test"]["post"]
    assert "200" in operation["responses"] and "requestBody" in operation


def test_an_unreadable_stored_password_is_409(api, make_session, db):
    created = make_session(proxy={"type": "http", "host": "127.0.0.1", "port": 3128, "username": "u",
                                  "password": "p"})
    with db.connection() as conn:  # a ciphertext made under another key / for another session
        conn.execute("UPDATE sessions SET proxy_password_enc = %s WHERE session_id = %s",
                     (b"\x01" + b"\x00" * 40, created["session_id"]))
    response = _post(api, f"/sessions/{created['session_id']}/proxy/test", session_headers(created), {})
    assert response.status_code == 409 and response.json_body["code"] == "proxy_password_unreadable"
