"""SSRF guard for webhook URLs.

Checked twice: when a webhook URL is configured (`check_url`, 422 on refusal) and when a
delivery connects (`GuardedAdapter`): the host is resolved, every address is checked,
and the socket connects to an address that passed the check, never re-resolving in
between, so a DNS answer that changes (rebinding) cannot slip a private address in.
Refusal happens before any socket is opened.

Refused unless `WEBHOOK_ALLOW_PRIVATE=true`: loopback, private (RFC 1918, ULA), link-local,
carrier-grade NAT, multicast, reserved, unspecified: any address that is not global.
Refused always: cloud metadata endpoints (169.254.169.254, fd00:ec2::254, 100.100.100.200,
192.0.0.192), even when private addresses are allowed.
"""
from __future__ import annotations

import ipaddress
import socket
from typing import Any, Callable
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from chalicelib.errors import ValidationFailed

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "169.254.170.2"))

Resolver = Callable[[str, int], list[tuple[Any, ...]]]


class UrlRefused(Exception):
    """The URL or the address it resolves to may not receive webhooks."""


def _default_resolver(host: str, port: int) -> list[tuple[Any, ...]]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def address_problem(address: str, *, allow_private: bool) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_private:
        return f"{ip} is a private address"
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return f"{ip} is not a public address"
    return None


def resolve_checked(host: str, port: int, *, allow_private: bool,
                    resolver: Resolver = _default_resolver) -> list[tuple[Any, ...]]:
    """getaddrinfo results for host, or UrlRefused if any address is not allowed."""
    try:
        infos = resolver(host, port)
    except socket.gaierror as exc:
        raise UrlRefused(f"host '{host}' does not resolve: {exc.strerror or exc}") from exc
    if not infos:
        raise UrlRefused(f"host '{host}' does not resolve")
    for info in infos:
        problem = address_problem(info[4][0], allow_private=allow_private)
        if problem:
            raise UrlRefused(f"host '{host}' resolves to {problem}")
    return infos


def check_url(url: str, *, allow_private: bool, resolver: Resolver = _default_resolver,
              unresolvable_ok: bool = False) -> None:
    """Raise UrlRefused unless `url` is http(s) to an allowed address.

    `unresolvable_ok` (configuration time): a host that does not resolve *yet* is accepted;
    the delivery-time check refuses it if it ever resolves to a forbidden address.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("webhook URLs must be http:// or https://")
    if not parts.hostname:
        raise UrlRefused("webhook URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("webhook URLs may not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused(f"bad port: {exc}") from exc
    try:
        resolve_checked(parts.hostname, port, allow_private=allow_private, resolver=resolver)
    except UrlRefused as exc:
        if unresolvable_ok and isinstance(exc.__cause__, socket.gaierror):
            return
        raise


def config_checker(allow_private: Callable[[], bool],
                   resolver: Resolver = _default_resolver) -> Callable[[str], None]:
    """For `SessionService(check_webhook_url=...)`: refusal is a 422 naming the field."""
    def check(url: str) -> None:
        try:
            check_url(url, allow_private=allow_private(), resolver=resolver, unresolvable_ok=True)
        except UrlRefused as exc:
            raise ValidationFailed(f"webhook URL refused: {exc}", code="webhook_url_refused",
                                   details=[{"field": "webhook.url", "message": str(exc),
                                             "type": "ssrf"}]) from None
    return check


# -- delivery time: connect only to addresses that passed the check --------------------
def _guarded_new_conn(self: HTTPConnection) -> socket.socket:
    guard = getattr(self, "_zemeow_guard")
    try:
        infos = resolve_checked(self._dns_host, self.port, allow_private=guard["allow_private"],
                                resolver=guard["resolver"])
    except UrlRefused as exc:
        if isinstance(exc.__cause__, socket.gaierror):  # a DNS failure: retried like any network error
            raise NewConnectionError(self, f"Failed to resolve: {exc}") from exc
        raise NewConnectionError(self, f"refused by the SSRF guard: {exc}") from exc
    last: OSError | None = None
    for family, socktype, proto, _canon, address in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for opt in self.socket_options or []:
                sock.setsockopt(*opt)
            if self.timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(self.timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise NewConnectionError(self, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(HTTPConnection):
    _new_conn = _guarded_new_conn


class _GuardedHTTPSConnection(HTTPSConnection):
    _new_conn = _guarded_new_conn


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections pass the SSRF guard at connect time."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = _default_resolver, **kwargs: Any):
        self._guard = {"allow_private": allow_private, "resolver": resolver}
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        guard = self._guard

        class HttpPool(HTTPConnectionPool):
            ConnectionCls = type("GuardedHTTPConnection", (_GuardedHTTPConnection,), {"_zemeow_guard": guard})

        class HttpsPool(HTTPSConnectionPool):
            ConnectionCls = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), {"_zemeow_guard": guard})

        self.poolmanager.pool_classes_by_scheme = {"http": HttpPool, "https": HttpsPool}
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)
