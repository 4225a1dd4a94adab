"""Where this test run's LocalStack listens: the one address tests that watch sockets allow."""
from __future__ import annotations

import os
from urllib.parse import urlsplit


def localstack_address() -> tuple[str | None, int]:
    """(host, port) of AWS_ENDPOINT_URL (the `stack` fixture sets it), else LocalStack's default."""
    endpoint = urlsplit(os.environ.get("AWS_ENDPOINT_URL") or "http://127.0.0.1:4566")
    return endpoint.hostname, endpoint.port or 4566
