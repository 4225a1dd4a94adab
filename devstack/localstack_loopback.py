"""Run LocalStack 4.13.1 listening only on the host that GATEWAY_LISTEN names.

Run with LocalStack's own interpreter (`.venv-localstack/bin/python <this file>`), never
imported by the project. LocalStack's twisted gateway (`localstack/runtime/server/
twisted.py`) builds `TCP4ServerEndpoint(reactor, port)` without an interface (a TODO in
its code): the host of `GATEWAY_LISTEN=127.0.0.1:4566` is parsed and then ignored, and the
gateway listens on 0.0.0.0, so queues, media and secrets would be open to the LAN without
authentication. Here every IPv4 endpoint opened without an interface gets the host that
GATEWAY_LISTEN gives for its port (127.0.0.1 for any other port), then the runtime starts
exactly as `python -m localstack.runtime.main` would.
"""
from __future__ import annotations

import os
import runpy
import sys


def _bind_to_gateway_hosts() -> None:
    from localstack import config
    from twisted.internet import endpoints

    hosts = {listen.port: listen.host for listen in config.GATEWAY_LISTEN}
    unbound = endpoints.TCP4ServerEndpoint

    def bound(reactor, port, backlog=50, interface=""):  # noqa: ANN001, ANN202 - twisted's signature
        return unbound(reactor, port, backlog, interface or hosts.get(port, "127.0.0.1"))

    endpoints.TCP4ServerEndpoint = bound


if __name__ == "__main__":
    # this file's directory holds devstack/localstack.py, which would shadow the package
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    _bind_to_gateway_hosts()
    sys.argv[0] = "localstack.runtime.main"
    runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
