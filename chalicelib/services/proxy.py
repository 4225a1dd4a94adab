"""Per-session proxies: read, change (encrypted password, `session.updated`), and probe.

Changing a proxy goes through `SessionService.update`, the one path that encrypts the
password (`proxy:<session_id>` context), writes the row and records `session.updated`
(`data.changed == ["proxy"]`) in the same transaction.

`ProxyProber` opens a real tunnel through a proxy with `python-socks` (HTTP CONNECT,
HTTPS = HTTP CONNECT over TLS to the proxy, SOCKS5 with remote DNS) and turns every way
it can fail into a stable code (see `chalicelib.schemas.proxy.PROBE_ERROR_CODES`).
python-socks does the protocols; this module only supplies the TCP/TLS transport
(through python-socks' `forward` hook), so that the whole probe runs under one deadline
and the failure can be attributed to the step it happened in (e.g. a SOCKS5 proxy that
hangs up after the username/password were sent refused them).

Network policy (`chalicelib.netguard`, the same rules as webhooks and the runner's dial):
the API connects to the *proxy* only; the target is resolved and dialled by the proxy, in
the proxy's network (SOCKS5 uses remote DNS, HTTP CONNECT sends the name), so the target
is not restricted. The proxy address is: cloud metadata and the stack's own ports are
refused always; loopback, private and other non-public addresses unless
PROXY_ALLOW_PRIVATE=true (refused in production). Refusal happens before any packet is
sent, and the probe connects to the addresses it checked (no second lookup that DNS
rebinding could change).

Which names exist is the policy's resolver's business: the test suite injects one that
answers loopback only (chalicelib/netguard/offline.py), since it and the API fuzzer post
arbitrary proxies to the probe and nothing may leave the machine.

Answers are ours: a code and a message in our words. Nothing the peer sent (a banner, a
reason phrase) is ever echoed back, or the probe would read internal services for the
caller. Each session may probe PROXY_TEST_RATE_LIMIT times per period (a PostgreSQL token
bucket shared by every API instance): 429 `rate_limited` beyond.

The deadline (`timeout`) covers connecting, TLS, authentication and the CONNECT answer;
the lookup of the proxy's own host name is left to the system resolver's timeouts.
"""
from __future__ import annotations

import socket
import ssl
import time
from typing import Any, Callable

from python_socks import ProxyError, ProxyTimeoutError, ProxyType
from python_socks.sync.v2 import Proxy as SyncProxy

from chalicelib.crypto import DecryptionError, SecretBox
from chalicelib.errors import Conflict, RateLimited
from chalicelib.netguard.resolve import NetPolicy, Refused, Unresolvable
from chalicelib.proxy_config import ProxyConfig
from chalicelib.services.proxy_failures import (ConnectionClosed, ProbeFailure, Trace, classify_http,
                                                classify_socks5, os_reason)
from chalicelib.repositories.rate_limits import RateLimitRepository
from chalicelib.schemas.proxy import ProxyTestRequest
from chalicelib.schemas.sessions import ProxyIn, UpdateSessionRequest
from chalicelib.services.sessions import SessionService

_TYPES = {"http": ProxyType.HTTP, "https": ProxyType.HTTP, "socks5": ProxyType.SOCKS5}



class _Stream:
    """The transport python-socks drives (its `SyncSocketStream` interface), with one
    deadline for the whole probe and a record of what was received."""

    def __init__(self, sock: Any, deadline: float, trace: Trace):
        self._socket = sock
        self._deadline = deadline
        self.trace = trace

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("probe deadline reached")
        self._socket.settimeout(remaining)

    def write(self, data: bytes) -> None:
        self._arm()
        self._socket.sendall(data)

    def read(self, max_bytes: int = 65536) -> bytes:
        self._arm()
        data = self._socket.recv(max_bytes)
        self.trace.reads.append(data)
        return data

    def read_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            self._arm()
            packet = self._socket.recv(n - len(data))
            if not packet:
                self.trace.reads.append(bytes(data))
                raise ConnectionClosed("the proxy closed the connection")
            data.extend(packet)
        self.trace.reads.append(bytes(data))
        return bytes(data)

    def start_tls(self, hostname: str, ssl_context: ssl.SSLContext) -> "_Stream":
        self._arm()
        wrapped = ssl_context.wrap_socket(self._socket, server_hostname=hostname)
        self.trace.tls_done = True
        return _Stream(wrapped, self._deadline, self.trace)

    def close(self) -> None:
        try:
            self._socket.close()
        except OSError:
            pass

    @property
    def socket(self) -> Any:
        return self._socket


class _Dialer:
    """python-socks' `forward` hook: opens the TCP connection to the proxy itself."""

    def __init__(self, prober: "ProxyProber", deadline: float, trace: Trace):
        self.prober = prober
        self.deadline = deadline
        self.trace = trace

    def connect(self, dest_host: str, dest_port: int, timeout: float | None = None, **_: Any) -> _Stream:
        failure: ProbeFailure | None = None
        for family, sockaddr in self.prober.resolve_proxy(dest_host, dest_port):  # like create_connection
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                break
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(remaining)
            try:
                sock.connect(sockaddr)
                return _Stream(sock, self.deadline, self.trace)
            except ConnectionRefusedError:
                failure = ProbeFailure("proxy_refused", f"connection refused by the proxy at {dest_host}:{dest_port}: "
                                                        "nothing is listening there")
            except socket.timeout:
                failure = ProbeFailure("timeout", f"could not connect to the proxy at {dest_host}:{dest_port} "
                                                  "before the timeout")
            except OSError as exc:
                failure = ProbeFailure("proxy_unreachable", f"could not connect to the proxy at "
                                                            f"{dest_host}:{dest_port}: {os_reason(exc)}")
            sock.close()
        raise failure or ProbeFailure("timeout", f"could not connect to the proxy at {dest_host}:{dest_port} "
                                                 "before the timeout")


class ProxyProber:
    def __init__(self, *, policy: NetPolicy, settle_seconds: float = 1.0,
                 tls_context: Callable[[], ssl.SSLContext] = ssl.create_default_context):
        """`policy`: the network guard's rules for proxies (PROXY_ALLOW_PRIVATE) and its
        resolver. `tls_context` builds the context for https proxies (system CAs, hostname
        checked)."""
        self.policy = policy
        self.settle_seconds = settle_seconds
        self._tls_context = tls_context

    # -- policy -------------------------------------------------------------------------
    def resolve_proxy(self, host: str, port: int) -> list[tuple[int, tuple]]:
        """One lookup; the addresses we connect to are the addresses we checked."""
        try:
            infos = self.policy.resolve(host, port)
        except Unresolvable:
            raise ProbeFailure("proxy_dns_failed", f"the proxy host '{host}' does not resolve") from None
        except Refused as exc:
            raise ProbeFailure("proxy_address_not_allowed", f"the proxy is not allowed: {exc.message}") from None
        return [(family, sockaddr) for family, _type, _proto, _name, sockaddr in infos]

    # -- probe --------------------------------------------------------------------------
    def probe(self, proxy: ProxyConfig, target_host: str, target_port: int, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        deadline = started + timeout
        trace = Trace()
        result: dict[str, Any] = {
            "ok": False, "latency_ms": None, "error": None, "proxy_type": proxy.type,
            "proxy": {"host": proxy.host, "port": proxy.port},
            "target": {"host": target_host, "port": target_port},
        }
        client = SyncProxy(_TYPES[proxy.type], proxy.host, proxy.port, username=proxy.username,
                           password=proxy.password, rdns=True,
                           proxy_ssl=self._tls_context() if proxy.type == "https" else None,
                           forward=_Dialer(self, deadline, trace))  # type: ignore[arg-type]
        stream = None
        try:
            stream = client.connect(target_host, target_port, timeout=timeout)
            latency = (time.monotonic() - started) * 1000
            self._settle(stream, deadline, target_host, target_port)
        except ProbeFailure as failure:
            result["error"] = {"code": failure.code, "message": failure.message}
            return result
        except Exception as exc:  # noqa: BLE001 - every failure becomes a coded answer
            failure = self._classify(exc, proxy, trace, target_host, target_port, timeout)
            result["error"] = {"code": failure.code, "message": failure.message}
            return result
        finally:
            if stream is not None:
                stream.close()
        result.update(ok=True, latency_ms=round(latency, 1))
        return result

    def _settle(self, stream: _Stream, deadline: float, host: str, port: int) -> None:
        """Some proxies (pproxy's SOCKS5, a few others) answer "succeeded" before they dial
        the target and hang up when the dial fails: a tunnel that is closed at once was
        never open. Wait a moment for that; data or silence both mean the tunnel holds."""
        window = min(self.settle_seconds, deadline - time.monotonic())
        if window <= 0:
            return
        sock = stream.socket
        sock.settimeout(window)
        try:
            data = sock.recv(1)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        if data == b"":
            raise ProbeFailure("target_unreachable",
                               f"the proxy accepted the tunnel to {host}:{port} but closed it at once: "
                               "it could not resolve or reach the target")

    @staticmethod
    def _classify(exc: BaseException, proxy: ProxyConfig, trace: Trace, host: str, port: int,
                  timeout: float) -> ProbeFailure:
        where = f"{proxy.host}:{proxy.port}"
        target = f"{host}:{port}"
        cause = exc.__cause__ if isinstance(exc, ProxyError) and exc.__cause__ is not None else exc
        if isinstance(exc, (ProxyTimeoutError, socket.timeout)) or isinstance(cause, socket.timeout):
            step = "the TLS handshake" if proxy.type == "https" and not trace.tls_done else "the proxy handshake"
            return ProbeFailure("timeout", f"no answer from the proxy at {where} within {timeout:g}s "
                                           f"(during {step})")
        if isinstance(cause, ssl.SSLCertVerificationError):
            return ProbeFailure("proxy_tls_failed", f"TLS handshake with the https proxy at {where} failed: "
                                                    f"certificate verify failed ({cause.verify_message})")
        if isinstance(cause, ssl.SSLError):
            return ProbeFailure("proxy_tls_failed", f"TLS handshake with the https proxy at {where} failed"
                                + (f" ({cause.reason})" if cause.reason else ""))
        if proxy.type == "socks5":
            return classify_socks5(exc, cause, proxy, trace, where, target)
        return classify_http(exc, cause, proxy, trace, where, target)




class ProxyService:
    def __init__(self, sessions: SessionService, get_row: Callable[[str], dict[str, Any] | None],
                 secret_box: Callable[[], SecretBox], prober: ProxyProber, *,
                 rate_limits: RateLimitRepository | None = None, rate_limit: tuple[int, float] = (20, 60.0)):
        self.sessions = sessions
        self._get_row = get_row
        self._secret_box = secret_box
        self.prober = prober
        self.rate_limits = rate_limits
        self.rate_limit = rate_limit

    def get(self, session_id: str) -> dict[str, Any]:
        return self.sessions.get(session_id)["proxy"]

    def set(self, session_id: str, proxy: ProxyIn) -> dict[str, Any]:
        """Replace the session's proxy; an omitted password keeps the stored one (null clears
        it). Emits `session.updated` with `changed: ["proxy"]` (SessionService.update), which
        also refuses (422) a proxy the network guard would refuse to dial."""
        return self.sessions.update(session_id, UpdateSessionRequest(proxy=proxy))["proxy"]

    def configured(self, session_id: str) -> ProxyConfig | None:
        row = self._get_row(session_id)
        if row is None:
            self.sessions.get(session_id)  # raises the contract's 404
        try:
            return ProxyConfig.from_row(row, self._secret_box())
        except DecryptionError:
            raise Conflict("the stored proxy password cannot be decrypted (was ENCRYPTION_KEY changed?); "
                           "set the proxy again", code="proxy_password_unreadable") from None

    def test(self, session_id: str, request: ProxyTestRequest) -> dict[str, Any]:
        self._charge(session_id)
        if request.proxy is not None:
            proxy = ProxyConfig.from_input(request.proxy)
        else:
            proxy = self.configured(session_id)
            if proxy is None:
                raise Conflict(f"session '{session_id}' has no enabled proxy; configure one with "
                               "POST /sessions/{session_id}/proxy or give one in the body as 'proxy'",
                               code="proxy_not_configured")
        return self.prober.probe(proxy, request.target_host, request.target_port, request.timeout)

    def _charge(self, session_id: str) -> None:
        """PROXY_TEST_RATE_LIMIT per session: a probe is a connection made on the caller's behalf."""
        if self.rate_limits is None:
            return
        self.sessions.get(session_id)  # a 404 before a bucket is made for a session that does not exist
        capacity, period = self.rate_limit
        charge = self.rate_limits.take(f"proxy_test:{session_id}", 1, capacity=capacity, period=period)
        if not charge.granted:
            raise RateLimited(f"this session may test proxies {capacity} times per {period:g}s "
                              f"(PROXY_TEST_RATE_LIMIT); retry in {charge.retry_after}s",
                              retry_after=charge.retry_after,
                              details={"limit": capacity, "period_seconds": period, "remaining": charge.remaining})
