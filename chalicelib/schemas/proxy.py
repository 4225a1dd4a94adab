"""Request and response models of the per-session proxy API (`/sessions/{id}/proxy...`).

The proxy itself is `ProxyIn` (write) / `ProxyOut` (read), the same models the session
JSON uses, so `GET /sessions/{id}` and `GET /sessions/{id}/proxy` always agree; the
password is write-only and shows as `has_password`.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from chalicelib.schemas.base import Model
from chalicelib.schemas.sessions import PROXY_HOST_PATTERN, ProxyIn, ProxyOut, Strict

__all__ = ["ProxyIn", "ProxyOut", "ProxyTestRequest", "ProxyTestResult", "ProxyTestError", "PROBE_ERROR_CODES"]

DEFAULT_TARGET_HOST = "web.whatsapp.com"
DEFAULT_TARGET_PORT = 443
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 25.0  # below API Gateway's 29 s integration limit

# Stable machine codes of a failed probe (`error.code`); the README lists what each means.
PROBE_ERROR_CODES = (
    "proxy_refused",              # nothing listens at the proxy's host:port
    "proxy_unreachable",          # no route to the proxy, connection reset, ...
    "proxy_dns_failed",           # the proxy's own host name does not resolve
    "proxy_address_not_allowed",  # metadata, the stack's own ports, or private (PROXY_ALLOW_PRIVATE=false)
    "proxy_tls_failed",           # https proxy: the TLS handshake with the proxy failed
    "proxy_auth_failed",          # 407, SOCKS5 auth refused, or credentials required
    "proxy_forbidden",            # the proxy's rules refuse this target (HTTP 403, SOCKS5 0x02)
    "target_unreachable",         # the proxy could not resolve or connect to the target
    "proxy_protocol_error",       # the other end does not speak the configured protocol
    "timeout",                    # no answer within `timeout`
)


class ProxyTestRequest(Strict):
    proxy: Optional[ProxyIn] = Field(default=None,
                                     description="a proxy to test instead of the session's configured one")
    target_host: str = Field(default=DEFAULT_TARGET_HOST, min_length=1, max_length=253,
                             description="host the proxy must open a tunnel to (resolved by the proxy)")
    target_port: int = Field(default=DEFAULT_TARGET_PORT, ge=1, le=65535)
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=MAX_TIMEOUT,
                           description="seconds for the whole probe (connect, TLS, auth, tunnel)")

    @field_validator("target_host")
    @classmethod
    def _target_host(cls, value: str) -> str:
        host = value.strip("[]")
        if ":" in host:  # IPv6 literal
            import ipaddress  # noqa: PLC0415

            try:
                return str(ipaddress.IPv6Address(host))
            except ValueError as exc:
                raise ValueError("must be a host name or an IP address") from exc
        if not PROXY_HOST_PATTERN.match(host):
            raise ValueError("must be a host name or an IP address, without scheme, port or path")
        return host.lower()

    @field_validator("proxy")
    @classmethod
    def _enabled(cls, value: Optional[ProxyIn]) -> Optional[ProxyIn]:
        if value is not None and not value.enabled:
            raise ValueError("the proxy to test must be enabled")
        return value


class ProxyTestError(Model):
    code: Literal[PROBE_ERROR_CODES]  # type: ignore[valid-type]
    message: str


class ProxyEndpoint(Model):
    host: str
    port: int


class ProxyTestResult(Model):
    ok: bool
    latency_ms: Optional[float] = Field(default=None,
                                        description="time until the tunnel was open (TCP, TLS, auth, CONNECT)")
    error: Optional[ProxyTestError] = None
    proxy_type: Literal["http", "https", "socks5"]
    proxy: ProxyEndpoint
    target: ProxyEndpoint
