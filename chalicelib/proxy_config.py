"""A session's proxy as the API's prober and the runner's dialer use it: one builder of
the proxy URL for both, so the runner's change detection (`_proxy_changed` compares
URLs) and the probe agree on what "the session's proxy" is.

The URL (`address()`) is what neonize/whatsmeow take (`ProxySettings(proxy_address=...)`):
`type://user:password@host:port`, user and password percent-quoted (any character,
`:`, `@` and `/` included), an IPv6 literal in brackets (once, even if stored with them).
Credentials appear when a username or a password is set: a password alone is
`type://:password@host:port` (Go's url.Parse reads an empty user and the password).
It contains the password: never log it (`repr` hides it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from chalicelib.crypto import SecretBox

PROXY_CONTEXT = "proxy:{}"  # the encryption context of a session's proxy password


@dataclass(frozen=True)
class ProxyConfig:
    """A usable proxy: what the prober and the runner (neonize) need, password in clear."""

    type: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_input(cls, proxy: Any) -> "ProxyConfig":
        """From a `ProxyIn` request body (not saved yet)."""
        return cls(type=proxy.type, host=proxy.host or "", port=proxy.port or 0,
                   username=proxy.username or None, password=proxy.password or None)

    @classmethod
    def from_row(cls, row: dict[str, Any], secret_box: SecretBox) -> "ProxyConfig | None":
        """The session row's proxy, password decrypted; None when disabled or incomplete."""
        if not row.get("proxy_enabled") or not row.get("proxy_host") or not row.get("proxy_port"):
            return None
        password = None
        if row.get("proxy_password_enc") is not None:
            password = secret_box.decrypt(row["proxy_password_enc"],
                                          context=PROXY_CONTEXT.format(row["session_id"]))
        return cls(type=row.get("proxy_type") or "http", host=row["proxy_host"], port=int(row["proxy_port"]),
                   username=row.get("proxy_username") or None, password=password)

    @property
    def host_for_url(self) -> str:
        if ":" in self.host and not self.host.startswith("["):
            return f"[{self.host}]"
        return self.host

    def address(self) -> str:
        auth = ""
        if self.username or self.password:
            auth = quote(self.username or "", safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return f"{self.type}://{auth}{self.host_for_url}:{self.port}"

    def __repr__(self) -> str:  # never show the password
        return (f"ProxyConfig(type={self.type!r}, host={self.host!r}, port={self.port}, "
                f"username={self.username!r}, password={'***' if self.password else None})")


def proxy_url(row: dict[str, Any], secret_box: SecretBox) -> str | None:
    """The URL of the session row's proxy (None without one): what the runner dials."""
    config = ProxyConfig.from_row(row, secret_box)
    return config.address() if config is not None else None
