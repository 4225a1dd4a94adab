"""Structured logging shared by the API, the webhook Lambda, the runner and the launcher.

Powertools Logger writes one JSON object per line (with `request_id` where there is
one); `LOG_PRETTY=true` switches to one readable line per record for humans. Nothing here
ever receives a secret: callers log identifiers, never keys, passwords or secrets.
"""
from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

_STANDARD_KEYS = {"level", "location", "message", "timestamp", "service", "sampling_rate"}


class PrettyFormatter(LambdaPowertoolsFormatter):
    """`12:00:01 INFO  zemeow-api message key=value ...` for a terminal."""

    def serialize(self, log: dict[str, Any]) -> str:
        extras = " ".join(
            f"{key}={value if isinstance(value, str) else json.dumps(value, default=str)}"
            for key, value in log.items()
            if key not in _STANDARD_KEYS and value is not None
        )
        stamp = str(log.get("timestamp", ""))[11:19]
        line = f"{stamp} {log.get('level', ''):<7} {log.get('service', '')} {log.get('message', '')}"
        return f"{line} {extras}".rstrip()


def make_logger(service: str, *, level: str = "INFO", pretty: bool = False) -> Logger:
    formatter = PrettyFormatter() if pretty else None
    return Logger(service=service, level=level, logger_formatter=formatter, utc=True)
