"""ENVIRONMENT=test: no name lookups leave the machine.

Tests and the API fuzzer feed arbitrary host names to code that resolves them (webhook
URLs, media URLs, proxies). On the machines we test on, the resolver is a network
service, so each lookup would be a packet to a non-loopback address. In the test
environment every process (the suite, `chalice local`, runners) replaces
`socket.getaddrinfo` with one that answers only for IP literals and `localhost` and
fails like NXDOMAIN for anything else, before any packet is sent.
"""
from __future__ import annotations

import ipaddress
import socket

_installed = False
_real_getaddrinfo = socket.getaddrinfo


def _is_local(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    name = name.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        return False


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    if not _is_local(host):
        raise socket.gaierror(socket.EAI_NONAME, f"name lookups are disabled when ENVIRONMENT=test ({host})")
    return _real_getaddrinfo(host, port, *args, **kwargs)


def install_offline_resolver() -> None:
    """Idempotent; call once per process when ENVIRONMENT=test."""
    global _installed
    if not _installed:
        socket.getaddrinfo = _guarded_getaddrinfo
        _installed = True
