"""Resolvers for machines that must not send a DNS query off the machine: tests, fuzzers
and benchmarks, which feed arbitrary host names to code that resolves them (webhook URLs,
media URLs, proxies). On the machines we test on the resolver is a network service, so
each real lookup would be a packet to a non-loopback address.

Nothing here is switched on by a setting. The code that resolves takes its resolver as an
argument (`NetPolicy(resolver=...)`, `Container(outbound_resolver=..., proxy_resolver=...)`);
whoever builds it for a test passes one of these:

- `offline_resolver`: IP literals and `localhost` as the system answers them; any other
  name fails like NXDOMAIN, before a packet is sent;
- `loopback_resolver`: loopback only: `localhost`, 127.0.0.0/8, ::1; other names do not
  exist, other addresses are refused as not allowed, so a proxy posted to a test stack is
  never dialled off the machine, whatever PROXY_ALLOW_PRIVATE says.

`install_offline_resolver()` puts `offline_resolver` in place of `socket.getaddrinfo` for
a whole process (the test process; the processes a test starts load it through
`devstack/offline_site/sitecustomize.py`), for libraries that look names up themselves.
"""
from __future__ import annotations

import ipaddress
import socket

_installed = False
_real_getaddrinfo = socket.getaddrinfo


def _name(host: object) -> str:
    name = host.decode() if isinstance(host, bytes) else str(host)
    return name.strip("[]").rstrip(".").lower()


def _literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return None


def _is_local(host: object) -> bool:
    if host is None:
        return True
    name = _name(host)
    return name == "localhost" or name.endswith(".localhost") or _literal(name) is not None


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    if not _is_local(host):
        raise socket.gaierror(socket.EAI_NONAME, f"name lookups are disabled on this machine ({host})")
    return _real_getaddrinfo(host, port, *args, **kwargs)


def offline_resolver(host: str, port: int) -> list[tuple]:
    """A `NetPolicy` resolver: IP literals and localhost; other names fail like NXDOMAIN."""
    return _guarded_getaddrinfo(host, port, type=socket.SOCK_STREAM)


def loopback_resolver(host: str, port: int) -> list[tuple]:
    """A `NetPolicy` resolver that answers loopback only: `localhost` is 127.0.0.1, another
    name does not exist (like NXDOMAIN: a proxy named so may be saved, never dialled), an IP
    literal that is not loopback is refused."""
    from chalicelib.netguard.resolve import Refused  # noqa: PLC0415 - resolve imports nothing from here

    name = _name(host)
    literal = _literal(name)
    if literal is None:
        if name == "localhost" or name.endswith(".localhost"):
            return _real_getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)
        raise socket.gaierror(socket.EAI_NONAME, f"only localhost resolves on this stack ({host})")
    if not literal.is_loopback:
        raise Refused(f"the address {host} is not loopback; this stack dials loopback only")
    return _real_getaddrinfo(name, port, type=socket.SOCK_STREAM)


def install_offline_resolver() -> None:
    """Idempotent: `socket.getaddrinfo` becomes the offline resolver for this process."""
    global _installed
    if not _installed:
        socket.getaddrinfo = _guarded_getaddrinfo
        _installed = True
