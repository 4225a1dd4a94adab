"""A host name to the addresses we may connect to: one lookup, every answer checked.

`NetPolicy.resolve` looks a host up once and refuses it when *any* address it answers is
not allowed (see `addresses.py`); the caller then connects to those very addresses, never
looking the name up again, so an answer that changes between the check and the dial (DNS
rebinding) cannot slip a private address in. The resolver is injectable (tests give one
that answers from a table); the default asks the system at call time.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from chalicelib.netguard.addresses import address_problem, port_problem

HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$")
AddrInfo = tuple[Any, ...]  # what socket.getaddrinfo returns per address
Resolver = Callable[[str, int], list[AddrInfo]]


class Refused(Exception):
    """The guard refuses this destination. The message is ours, safe to show to the caller."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Unresolvable(Refused):
    """The host name does not resolve (now): not a policy refusal, may work later."""


def system_resolver(host: str, port: int) -> list[AddrInfo]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # looked up per call: tests patch it


def stack_ports(*, server_port: int | None, emulator_port: int | None, metrics_port: int | None,
                aws_endpoint_url: str | None) -> frozenset[int]:
    """The ports this stack's own services listen on (refused on local addresses)."""
    ports = {p for p in (server_port, emulator_port, metrics_port) if p}
    if aws_endpoint_url:
        parts = urlsplit(aws_endpoint_url)
        try:
            ports.add(parts.port or (443 if parts.scheme == "https" else 80))
        except ValueError:
            pass
    return frozenset(ports)


@dataclass(frozen=True)
class NetPolicy:
    """Where outbound connections may go. `allow_private` comes from WEBHOOK_ALLOW_PRIVATE
    (webhooks, media) or PROXY_ALLOW_PRIVATE (proxies); metadata and the stack's own ports
    are refused regardless."""

    allow_private: bool = False
    stack_ports: frozenset[int] = frozenset()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_settings(cls, settings: Any, *, allow_private: bool, resolver: Resolver | None = None) -> "NetPolicy":
        ports = stack_ports(server_port=settings.server_port, emulator_port=settings.emulator_port,
                            metrics_port=settings.metrics_port, aws_endpoint_url=settings.aws_endpoint_url)
        return cls(allow_private=allow_private, stack_ports=ports, resolver=resolver or system_resolver)

    def check_address(self, address: str, port: int) -> None:
        problem = address_problem(address, allow_private=self.allow_private) or \
            port_problem(address, port, self.stack_ports)
        if problem:
            raise Refused(problem)

    def resolve(self, host: str, port: int) -> list[AddrInfo]:
        """getaddrinfo answers for host, all allowed; Refused (or Unresolvable) otherwise."""
        name = host.strip("[]")
        if not _valid_host(name):
            raise Refused("the host is not a valid host name or IP address")
        try:
            infos = self.resolver(name, port)
        except (socket.gaierror, UnicodeError) as exc:
            why = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else "no such name"
            raise Unresolvable(f"host '{name}' does not resolve ({why})") from None
        if not infos:
            raise Unresolvable(f"host '{name}' does not resolve")
        for info in infos:
            try:
                self.check_address(info[4][0], port)
            except Refused as exc:
                raise Refused(f"host '{name}' resolves to {exc.message}") from None
        return infos

    def check_url(self, url: str, *, what: str = "URL", unresolvable_ok: bool = False) -> None:
        """Refused unless `url` is http(s), without credentials, to an allowed address.

        `unresolvable_ok` (configuration time): a host that does not resolve *yet* passes;
        the connection-time check refuses it if it ever resolves to a forbidden address.
        """
        host, port = split_http_url(url, what=what)
        try:
            self.resolve(host, port)
        except Unresolvable:
            if not unresolvable_ok:
                raise


def _valid_host(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
        return True
    except ValueError:
        return bool(HOST_NAME.match(name))


def split_http_url(url: str, *, what: str = "URL") -> tuple[str, int]:
    """(host, port) of an http(s) URL, or Refused naming what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused(f"the {what} is malformed") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"{what}s must be http:// or https://")
    if not parts.hostname:
        raise Refused(f"the {what} has no host")
    if parts.username or parts.password:
        raise Refused(f"{what}s may not carry credentials")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)
