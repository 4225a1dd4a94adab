"""boto3 clients built one way for the API, the runner and the local tools.

`AWS_ENDPOINT_URL` points every client at LocalStack. Timeouts are short and retries
few, so that a queue that is down makes a request fail fast with a clear error (the
command outbox keeps what was accepted) instead of hanging a Lambda for a minute.
"""
from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import Settings


def make_client(service: str, settings: Settings, *, connect_timeout: float = 3,
                read_timeout: float = 25, max_attempts: int = 3) -> Any:
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        max_pool_connections=50,
    )
    if service == "s3":
        # presigned URLs must be SigV4 (boto3 still signs them SigV2 on us-east-1 by default) and
        # reachable by whoever gets them: path-style on LocalStack (http://127.0.0.1:4566/bucket/key),
        # virtual-hosted on AWS
        config = config.merge(Config(signature_version="s3v4", s3={
            "addressing_style": "path" if settings.aws_endpoint_url else "virtual"}))
    kwargs: dict[str, Any] = {"region_name": settings.aws_region, "config": config}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
        if not settings.aws_credentials_configured:
            # LocalStack accepts any credentials; a fresh machine has none configured.
            kwargs["aws_access_key_id"] = "test"
            kwargs["aws_secret_access_key"] = "test"
    return boto3.client(service, **kwargs)
