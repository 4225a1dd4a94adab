"""Session proxies through the guard: checked when saved, probed, and dialled by the runner.

The same rules as every outbound connection (`addresses.py`), under PROXY_ALLOW_PRIVATE:
the proxy's host is looked up once, every address it resolves to is checked, and the
dialer is given a checked *address*, not the name, so whatsmeow's own lookup cannot be
answered differently (DNS rebinding). An `https` proxy keeps its name: its TLS
certificate is verified against that name, which a rebound address cannot present.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from chalicelib.netguard.resolve import NetPolicy, Refused, Unresolvable


def check_proxy_host(host: str, port: int, policy: NetPolicy, *, unresolvable_ok: bool = False) -> list[str]:
    """The checked addresses of a proxy host; Refused (or Unresolvable) otherwise."""
    try:
        return [info[4][0] for info in policy.resolve(host, port)]
    except Unresolvable:
        if unresolvable_ok:
            return []
        raise


def dial_url(proxy_url: str, policy: NetPolicy) -> str:
    """`proxy_url` with its host replaced by a checked address (http, socks5), after every
    address the host resolves to passed the guard. Refused (a message without the
    password) when the proxy may not be dialled."""
    parts = urlsplit(proxy_url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise Refused("the proxy address is malformed") from None
    if not host or not port:
        raise Refused("the proxy address has no host or port")
    addresses = check_proxy_host(host, port, policy)
    if parts.scheme == "https":
        return proxy_url
    chosen = addresses[0].split("%", 1)[0]
    shown = f"[{chosen}]" if isinstance(ipaddress.ip_address(chosen), ipaddress.IPv6Address) else chosen
    userinfo = parts.netloc.rpartition("@")[0]
    return f"{parts.scheme}://{userinfo + '@' if userinfo else ''}{shown}:{port}"
