"""The one outbound HTTP client of the product: webhook deliveries, `media_url` downloads,
and anything that makes an HTTP request on a caller's behalf later.

`OutboundHttp(policy).request(...)` is the only way in (a test fails if a module of
`chalicelib/` or `runner_container/` builds its own `requests.Session`, urllib3
`PoolManager`, or calls `requests.get/post/...`). It is urllib3 directly, not requests:
requests cost 0.5-0.7 ms more CPU per POST on these machines (1.14 ms of client CPU per
keep-alive POST through requests, 0.40-0.65 ms through urllib3), and the bridges' CPU is
the webhook pipeline's largest share. It guarantees, for every request:

- the SSRF guard on every connection, redirect hops included: the host is looked up once
  (`NetPolicy.resolve`), every address checked, and the socket connects to a checked
  address, never a second lookup (no DNS-rebinding window);
- no environment proxy: urllib3 never reads HTTP(S)_PROXY, NO_PROXY or ~/.netrc, and no
  `ProxyManager` is ever built, so no proxy carries a request past the guard (the proxy,
  not us, would pick the peer);
- only http and https: a redirect to `file://`, `gopher://` or a malformed URL is a refusal;
- one total deadline for the whole request (lookup aside: connect, TLS, sending, headers
  and the whole body, every redirect): a server that drips a byte a second is cut off at
  the deadline (`deadline.py`: a watchdog shuts the request's sockets down, which wakes a
  read blocked on them; the body loop checks it between chunks too);
- failures as `OutboundError`s with a `kind` and a message in our own words (never the
  peer's bytes nor a library's exception text).
"""
from __future__ import annotations

import errno
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from urllib3 import HTTPHeaderDict, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (ConnectTimeoutError, DecodeError, LocationValueError, MaxRetryError,
                                NewConnectionError, ReadTimeoutError, ResponseError)
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.timeout import _DEFAULT_TIMEOUT, Timeout

from chalicelib.netguard import deadline
from chalicelib.netguard.resolve import NetPolicy, Refused, Unresolvable, split_http_url

CHUNK = 64 * 1024


class OutboundError(Exception):
    """kind: refused | unresolvable | timeout | connection_failed | too_many_redirects |
    too_large | protocol_error. The message is ours and safe to store or show.

    The kinds a caller treats apart have their own type (`OutboundRefused`,
    `OutboundUnresolvable`, `OutboundTimeout`): catch those, never match the message."""

    def __init__(self, kind: str, message: str, *, declared_size: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.declared_size = declared_size


class OutboundRefused(OutboundError):
    """The guard refused the destination (a private or metadata address, a bad scheme or URL,
    a redirect to one): nothing was sent, and trying again cannot help."""

    def __init__(self, message: str):
        super().__init__("refused", message)


class OutboundUnresolvable(OutboundError):
    """The host name did not resolve: a network error like any other (retried)."""

    def __init__(self, message: str):
        super().__init__("unresolvable", message)


class OutboundTimeout(OutboundError):
    """No complete answer within the total deadline."""

    def __init__(self, message: str):
        super().__init__("timeout", message)


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes  # at most max_bytes (overflow="truncate") or the whole body
    truncated: bool


# -- connections that pass the guard ---------------------------------------------------
class _GuardRefusal(NewConnectionError):
    """Raised at connect time; carries the guard's refusal (found again in `_classify`)."""

    def __init__(self, conn: Any, refusal: Refused):
        super().__init__(conn, refusal.message)
        self.refusal = refusal


def _guarded_new_conn(self: HTTPConnection) -> socket.socket:
    policy: NetPolicy = self._zemeow_policy  # type: ignore[attr-defined]
    try:
        infos = policy.resolve(self._dns_host, self.port)
    except Refused as refusal:
        raise _GuardRefusal(self, refusal) from None
    scope = deadline.current()
    last: OSError | None = None
    for family, socktype, proto, _canon, address in infos:
        sock = socket.socket(family, socktype, proto)
        try:
            for opt in self.socket_options or []:
                sock.setsockopt(*opt)
            timeout = None if self.timeout is _DEFAULT_TIMEOUT else self.timeout
            if scope is not None:
                remaining = max(0.001, scope.remaining())
                timeout = remaining if timeout is None else min(timeout, remaining)
            if timeout is not None:
                sock.settimeout(timeout)
            if scope is not None:
                scope.watch(sock, dup=True)
            sock.connect(address)  # the checked address: no second lookup
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise NewConnectionError(self, f"Failed to establish a new connection: {last}") from last  # errno: named


class _WatchedMixin:
    """A reused (kept-alive) connection joins the current request's deadline too."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        scope = deadline.current()
        if scope is not None:
            scope.watch(self.sock)  # type: ignore[attr-defined]
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        scope = deadline.current()
        if scope is not None:
            scope.watch(self.sock)  # type: ignore[attr-defined]
        return super().getresponse(*args, **kwargs)  # type: ignore[misc]


class _GuardedHTTPConnection(_WatchedMixin, HTTPConnection):
    _new_conn = _guarded_new_conn


class _GuardedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    _new_conn = _guarded_new_conn


def _guarded_pool_classes(policy: NetPolicy) -> dict[str, type]:
    """Connection pools whose every connection passes the guard at connect time."""
    attrs = {"_zemeow_policy": policy}

    class HttpPool(HTTPConnectionPool):
        ConnectionCls = type("GuardedHTTPConnection", (_GuardedHTTPConnection,), attrs)

    class HttpsPool(HTTPSConnectionPool):
        ConnectionCls = type("GuardedHTTPSConnection", (_GuardedHTTPSConnection,), attrs)

    return {"http": HttpPool, "https": HttpsPool}


# -- the client --------------------------------------------------------------------------
class OutboundHttp:
    """The client factory: one guarded urllib3 `PoolManager` per thread (its connection
    pools kept per thread, as the requests sessions before it were)."""

    def __init__(self, policy: NetPolicy, *, user_agent: str, pool_maxsize: int = 10):
        self.policy = policy
        self.user_agent = user_agent
        self.pool_maxsize = pool_maxsize
        self._local = threading.local()
        self._pool_classes = _guarded_pool_classes(policy)

    def _pools(self) -> PoolManager:
        pools = getattr(self._local, "pools", None)
        if pools is None:
            pools = PoolManager(num_pools=self.pool_maxsize, maxsize=self.pool_maxsize)
            pools.pool_classes_by_scheme = self._pool_classes
            self._local.pools = pools
        return pools

    def request(self, method: str, url: str, *, timeout: float, connect_timeout: float | None = None,
                data: bytes | None = None, headers: Mapping[str, str] | None = None,
                follow_redirects: bool = False, max_redirects: int = 3, max_bytes: int = 1024 * 1024,
                overflow: str = "raise", drain: int = 0, what: str = "URL") -> OutboundResponse:
        """One request, all of it within `timeout` seconds.

        overflow="raise": a body over `max_bytes` (declared or streamed) is `too_large`;
        "truncate": keep the first `max_bytes`, read at most `drain` more (so a modest body
        finishes and the connection is reused), and mark the answer truncated.
        """
        try:
            split_http_url(url, what=what)
        except Refused as exc:
            raise OutboundRefused(exc.message) from None
        scope = deadline.begin(timeout)
        # No retries ever; redirects (when followed) counted, and one too many is an error.
        # Cross-host hops lose Authorization and Cookie (urllib3's remove_headers_on_redirect).
        retries: Retry | bool = (Retry(total=None, connect=0, read=0, status=0, other=0, redirect=max_redirects,
                                       raise_on_redirect=True, raise_on_status=False)
                                 if follow_redirects else False)
        reading = False
        try:
            response = self._pools().urlopen(
                method, url, body=data, headers=self._headers(headers),
                retries=retries, redirect=follow_redirects, preload_content=False,
                timeout=Timeout(connect=min(connect_timeout or timeout, timeout), read=timeout))
            reading = True
            try:
                return self._read(response, scope, max_bytes, overflow, drain, what)
            finally:
                response.release_conn()
        except OutboundError:
            raise
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes a coded error
            raise _classify(exc, scope, timeout, what, reading=reading) from None
        finally:
            deadline.end(scope)

    def _headers(self, given: Mapping[str, str] | None) -> HTTPHeaderDict:
        headers = HTTPHeaderDict({"User-Agent": self.user_agent, "Accept": "*/*"})
        headers.update(given or {})  # names match case-insensitively: a caller's User-Agent replaces ours
        return headers

    @staticmethod
    def _read(response: BaseHTTPResponse, scope: deadline.Scope, max_bytes: int, overflow: str, drain: int,
              what: str) -> OutboundResponse:
        declared = response.headers.get("Content-Length")
        if overflow == "raise" and declared and declared.isdigit() and int(declared) > max_bytes:
            response.close()  # its body is never read: the connection cannot be reused
            raise OutboundError("too_large", f"the {what} is {declared} bytes; the limit is {max_bytes}",
                                declared_size=int(declared))
        body = bytearray()
        truncated = False
        extra = 0
        complete = True
        for chunk in _chunks(response, scope):
            if truncated:
                extra += len(chunk)
                if extra >= drain:
                    complete = False
                    break
                continue
            body.extend(chunk)
            if len(body) > max_bytes:
                if overflow == "raise":
                    response.close()
                    raise OutboundError("too_large", f"the {what} is over the {max_bytes}-byte limit")
                truncated = True
                extra = len(body) - max_bytes
                del body[max_bytes:]
                if extra >= drain:
                    complete = False
                    break
        if not complete:
            response.close()  # the rest is unread: this connection cannot carry another request
        return OutboundResponse(response.status, dict(response.headers), bytes(body), truncated)


def _chunks(response: BaseHTTPResponse, scope: deadline.Scope) -> Iterator[bytes]:
    for chunk in response.stream(CHUNK, decode_content=True):
        if scope.expired or scope.remaining() <= 0:
            scope.expired = True
            raise TimeoutError("deadline")
        yield chunk
    if scope.expired:  # the watchdog ended the body early: not a complete answer
        raise TimeoutError("deadline")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        linked = [*getattr(item, "args", ()), getattr(item, "reason", None), item.__cause__, item.__context__]
        todo += [a for a in linked if isinstance(a, BaseException)]


def _classify(exc: BaseException, scope: deadline.Scope, timeout: float, what: str, *,
              reading: bool) -> OutboundError:
    """`reading`: the status line and headers had come; a failure now is a broken answer."""
    chain = list(_chain(exc))
    refusal = _guard_refusal(chain)
    if refusal is not None:
        return refusal
    if isinstance(exc, OutboundError):
        return exc
    if scope.expired or any(_is_timeout(i) for i in chain):
        return OutboundTimeout(f"no complete answer within {timeout:g}s")
    return _by_type(exc, chain, what) or _by_connection(chain, reading)


def _is_timeout(item: BaseException) -> bool:
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2 but is a refused or failed connect
    if isinstance(item, NewConnectionError):
        return False
    return isinstance(item, (ReadTimeoutError, ConnectTimeoutError, socket.timeout, TimeoutError))


def _guard_refusal(chain: list[BaseException]) -> OutboundError | None:
    for item in chain:
        if isinstance(item, _GuardRefusal):
            if isinstance(item.refusal, Unresolvable):
                return OutboundUnresolvable(item.refusal.message)
            return OutboundRefused(item.refusal.message)
    return None


def _by_type(exc: BaseException, chain: list[BaseException], what: str) -> OutboundError | None:
    if any(isinstance(i, (Urllib3SSLError, ssl.SSLError, ssl.CertificateError)) for i in chain):
        return OutboundError("connection_failed", "connection failed: the TLS handshake or certificate check failed")
    if isinstance(exc, MaxRetryError) and isinstance(exc.reason, ResponseError):
        return OutboundError("too_many_redirects", f"the {what} redirected too many times")
    # a bad Location: urljoin's ValueError at the top, or urllib3's URL errors below it (not any
    # ValueError in the chain: a broken chunk length carries one, and is a protocol error)
    if (isinstance(exc, ValueError) and not isinstance(exc, OSError)) or any(
            isinstance(i, LocationValueError) for i in chain):
        return OutboundRefused(f"the {what} redirected to a URL that is not a valid http(s) URL")
    if any(isinstance(i, DecodeError) for i in chain):
        return OutboundError("protocol_error", "the answer was cut off or is not valid HTTP")
    return None


def _by_connection(chain: list[BaseException], reading: bool) -> OutboundError:
    for item in chain:
        if isinstance(item, OSError) and item.errno:
            return OutboundError("connection_failed", f"connection failed: {os.strerror(item.errno)}")
    if any(isinstance(i, ConnectionResetError) or getattr(i, "errno", None) == errno.ECONNRESET for i in chain):
        return OutboundError("connection_failed", "connection failed: the peer reset the connection")
    if not reading:
        return OutboundError("connection_failed", "connection failed")
    return OutboundError("protocol_error", "the answer was cut off or is not valid HTTP")
