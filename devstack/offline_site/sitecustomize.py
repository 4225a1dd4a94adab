"""Loaded by every Python process started with this folder on PYTHONPATH (the processes
the test suite and the benchmarks start: runners, `chalice local`, SQS bridges): no name
lookup leaves the machine (chalicelib/netguard/offline.py), and a connection to anything
but loopback fails at once with ENETUNREACH, so a proxy or URL posted by a fuzzer is never
dialled off the machine. Nothing in the application turns this on."""
from __future__ import annotations

import errno
import ipaddress
import socket


def _jail() -> None:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def allowed(sock: socket.socket, address: object) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            return True
        try:
            return ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback
        except ValueError:
            return False

    def connect(self, address):
        if not allowed(self, address):
            raise OSError(errno.ENETUNREACH, f"only loopback connections on this machine ({address[0]})")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not allowed(self, address):
            return errno.ENETUNREACH
        return real_connect_ex(self, address)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex


try:
    from chalicelib.netguard.offline import install_offline_resolver

    install_offline_resolver()
except ImportError:  # a process that does not run from the project root
    pass
_jail()
