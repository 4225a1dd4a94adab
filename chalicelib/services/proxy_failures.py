"""How a proxy probe failed, in our words: a stable code (`PROBE_ERROR_CODES`) and a
message naming the step, built from what the proxy sent (`Trace`) and the exception,
never from text the peer sent."""
from __future__ import annotations

import os

from chalicelib.proxy_config import ProxyConfig

SOCKS5_REPLIES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


class ProbeFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class ConnectionClosed(Exception):
    """The proxy hung up in the middle of the handshake."""


class Trace:
    """What the proxy sent so far, so that a failure can be attributed to its step."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []
        self.tls_done = False


def classify_http(exc: BaseException, cause: BaseException, proxy: ProxyConfig, trace: Trace,
                  where: str, target: str) -> ProbeFailure:
    status = getattr(exc, "error_code", None)
    if status == 407:
        detail = "the username/password were refused" if proxy.username else "it requires a username and password"
        return ProbeFailure("proxy_auth_failed", f"proxy authentication failed at {where}: {detail} (HTTP 407)")
    if status == 403:
        return ProbeFailure("proxy_forbidden", f"the proxy at {where} refuses tunnels to {target} (HTTP 403)")
    if status in (502, 503, 504):
        return ProbeFailure("target_unreachable", f"the proxy at {where} could not resolve or reach {target} "
                                                  f"(HTTP {status})")
    if isinstance(status, int):
        return ProbeFailure("proxy_protocol_error", f"the proxy at {where} answered CONNECT {target} with "
                                                    f"HTTP {status}, not 200")
    if trace.reads and trace.reads[-1] == b"" or isinstance(cause, (ConnectionClosed, ConnectionResetError)):
        return ProbeFailure("target_unreachable", f"the proxy at {where} closed the connection instead of answering "
                                                  f"CONNECT {target}: it could not resolve or reach the target")
    if isinstance(cause, OSError):
        return ProbeFailure("proxy_unreachable", f"connection to the proxy at {where} failed: {os_reason(cause)}")
    return ProbeFailure("proxy_protocol_error", f"the server at {where} did not answer like an HTTP proxy")


def classify_socks5(exc: BaseException, cause: BaseException, proxy: ProxyConfig, trace: Trace,
                    where: str, target: str) -> ProbeFailure:
    code = getattr(exc, "error_code", None)
    if code is not None:
        return _socks5_reply(code, where, target)
    reads = trace.reads
    method_reply = reads[0] if reads else b""
    method = method_reply[1] if len(method_reply) == 2 and method_reply[0] == 5 else None
    closed = isinstance(cause, (ConnectionClosed, ConnectionResetError, BrokenPipeError))
    failure = _socks5_greeting(method, closed, proxy, where)
    if failure is not None:
        return failure
    if method == 0x02 and (len(reads) < 2 or len(reads[1]) < 2 or reads[1][1] != 0):
        return ProbeFailure("proxy_auth_failed", f"SOCKS5 authentication failed at {where}: "
                                                 "the username/password were refused")
    if closed:
        return ProbeFailure("target_unreachable", f"the SOCKS5 proxy at {where} closed the connection instead of "
                                                  f"answering CONNECT {target}: it could not resolve or reach it")
    if isinstance(cause, OSError):
        return ProbeFailure("proxy_unreachable", f"connection to the proxy at {where} failed: {os_reason(cause)}")
    return ProbeFailure("proxy_protocol_error", f"the server at {where} did not answer like a SOCKS5 proxy")


def _socks5_reply(code: int, where: str, target: str) -> ProbeFailure:
    """The proxy answered CONNECT with an error reply."""
    reason = SOCKS5_REPLIES.get(code, f"reply {code:#04x}")
    if code == 0x02:
        return ProbeFailure("proxy_forbidden", f"the SOCKS5 proxy at {where} refuses {target}: {reason}")
    if code in (0x01, 0x03, 0x04, 0x05, 0x06):
        return ProbeFailure("target_unreachable", f"the SOCKS5 proxy at {where} could not resolve or reach "
                                                  f"{target}: {reason}")
    return ProbeFailure("proxy_protocol_error", f"the SOCKS5 proxy at {where} answered: {reason}")


def _socks5_greeting(method: int | None, closed: bool, proxy: ProxyConfig, where: str) -> ProbeFailure | None:
    """A failure in the method negotiation (the greeting), or None when it passed."""
    if method == 0xFF or method is None and closed and not proxy.username:
        detail = ("it accepts none of the offered authentication methods" if proxy.username
                  else "it requires a username and password")
        return ProbeFailure("proxy_auth_failed", f"SOCKS5 authentication failed at {where}: {detail}")
    if method is None:
        if closed:
            return ProbeFailure("proxy_protocol_error", f"the SOCKS5 proxy at {where} closed the connection "
                                                        "during the greeting")
        return ProbeFailure("proxy_protocol_error", f"the server at {where} did not answer like a SOCKS5 proxy")
    return None


def os_reason(exc: BaseException) -> str:
    """The operating system's words for a socket error (never text the peer sent)."""
    number = getattr(exc, "errno", None)
    if number:
        return os.strerror(number)
    return "the connection failed"
