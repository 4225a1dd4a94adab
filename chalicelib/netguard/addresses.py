"""The address rules: which IP addresses (and which local ports) outbound traffic may reach.

One set of rules for every outbound connection the product makes on a caller's behalf:
webhook deliveries, `media_url` downloads, the proxy probe and the runner's proxy dial.

- An IPv6 address that carries an IPv4 address is judged as that IPv4 address: IPv4-mapped
  (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`),
  NAT64 (`64:ff9b::/96`, and the local-use `64:ff9b:1::/48`), 6to4 (`2002::/16`) and
  Teredo (`2001::/32`, the client address). Otherwise `[::a9fe:a9fe]` would be a way to
  write 169.254.169.254 that an IPv6 rule lets through.
- Cloud metadata endpoints are refused always, even when private addresses are allowed.
- Unless private addresses are allowed: anything that is not a global unicast address
  (loopback, RFC 1918, ULA, link-local, carrier-grade NAT, multicast, reserved, unspecified).
- The stack's own ports (API, emulator control API, metrics, the AWS/LocalStack endpoint)
  on a local address (loopback, unspecified, or one of this machine's own addresses) are
  refused always: a webhook or proxy pointed there would make the stack call itself.
"""
from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, ...
    "169.254.170.2",    # ECS task credentials
    "fd00:ec2::254",    # AWS IPv6 IMDS
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",      # Oracle Cloud
))

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def parse(address: str) -> IPAddress:
    """An address as getaddrinfo or a URL gives it (brackets and a `%zone` are dropped)."""
    return ipaddress.ip_address(address.strip("[]").split("%", 1)[0])


def carried_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the embedding forms."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _TRANSLATED:
        return low32
    if ip in _NAT64_LOCAL:  # RFC 8215: the IPv4 address sits in the last 32 bits too
        return low32
    if ip in _COMPATIBLE and int(ip) > 1:  # not :: nor ::1, which are themselves
        return low32
    return None


def effective(ip: IPAddress) -> IPAddress:
    """The address that decides: the carried IPv4 address, or the address itself."""
    return carried_ipv4(ip) or ip


def is_local(ip: IPAddress) -> bool:
    """Loopback, unspecified (0.0.0.0 and :: reach this host), or an address of this machine."""
    ip = effective(ip)
    return ip.is_loopback or ip.is_unspecified or ip in own_addresses()


def address_problem(ip: IPAddress | str, *, allow_private: bool) -> str | None:
    """Why `ip` may not be reached, in our words, or None when it may."""
    if isinstance(ip, str):
        ip = parse(ip)
    real = effective(ip)
    shown = f"{ip}" if real == ip else f"{ip} (that is {real})"
    if real in METADATA_ADDRESSES or ip in METADATA_ADDRESSES:
        return f"{shown} is a cloud metadata address"
    if allow_private:
        return None
    kind = _non_public_kind(real)
    return f"{shown} is {kind}" if kind else None


def _non_public_kind(ip: IPAddress) -> str | None:
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "not a public address"
    return None


def port_problem(ip: IPAddress | str, port: int, stack_ports: frozenset[int]) -> str | None:
    """Why (ip, port) is the stack itself, or None."""
    if port not in stack_ports:
        return None
    if isinstance(ip, str):
        ip = parse(ip)
    if is_local(ip):
        return f"{ip}, and port {port} there is one of this stack's own services"
    return None


@lru_cache(maxsize=1)
def own_addresses() -> frozenset[IPAddress]:
    """This machine's interface addresses (Linux: read from /proc, no lookup); empty elsewhere."""
    found: set[IPAddress] = set()
    try:  # IPv4: the "/32 host LOCAL" leaves of the local routing table
        previous = None
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            text = line.strip()
            if text.startswith("|--"):
                previous = text[3:].strip()
            elif "/32 host LOCAL" in text and previous:
                found.add(ipaddress.ip_address(previous))
    except (OSError, ValueError):
        pass
    try:  # IPv6: one address per line, 32 hex digits first
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            digits = line.split()[0]
            found.add(ipaddress.IPv6Address(int(digits, 16)))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(found)
