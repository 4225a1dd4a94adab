"""Parsers of setting values: each takes the variable's text and returns the value or
raises ValueError saying what is wrong (`config._Reader` adds the variable's name)."""
from __future__ import annotations

import re
from typing import Callable

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DRIVERS = ("neonize", "emulator")
ENVIRONMENTS = ("development", "test", "staging", "production")
QUEUE_PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# S3 bucket naming rules (no dots: virtual-hosted TLS certificates do not cover them)
BUCKET_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
INBOUND_MEDIA_MODES = ("s3", "off")
DEFAULT_MEDIA_MAX_BYTES = 64 * 1024 * 1024  # = runner_container.wa_messages.MAX_MEDIA_BYTES
MAX_PRESIGN_SECONDS = 7 * 86400  # SigV4's longest presigned URL

# every COUNT/PERIOD limit kept in the rate_limits table: RATE_LIMIT_RETENTION covers the longest period
RATE_LIMIT_SETTINGS = {"CONTACTS_CHECK_RATE_LIMIT": "contacts_check_rate_limit",
                       "PROXY_TEST_RATE_LIMIT": "proxy_test_rate_limit",
                       "API_RATE_LIMIT": "api_rate_limit",
                       "API_ADMIN_RATE_LIMIT": "api_admin_rate_limit"}

# Svix's schedule, in seconds: 5s, 5m, 30m, 2h, 5h, 10h, 10h.
DEFAULT_WEBHOOK_RETRY_SCHEDULE: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


def parse_duration(text: str) -> float:
    """`10s`, `2m`, `1h`, `7d`, `250ms` or a bare number of seconds -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError("expected a duration such as 10s, 2m, 1h, 7d or 250ms")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_port(text: str) -> int:
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError("expected a port number from 1 to 65535")
    return port


def _parse_int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return value

    return parse


def _parse_choice(choices: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return value

    return parse


def _parse_schedule(text: str) -> tuple[float, ...]:
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("expected a comma-separated list of durations such as 1s,5s,30s")
    return tuple(parse_duration(p) for p in parts)


def _parse_queue_prefix(text: str) -> str:
    if not QUEUE_PREFIX_PATTERN.match(text):
        raise ValueError("expected 1-40 letters, digits, '-' or '_'")
    return text


def parse_rate(text: str) -> tuple[int, float]:
    """`200/1h`, `50/10m`, or a bare `200` (per hour) -> (count, period in seconds)."""
    count_text, _, period_text = text.strip().partition("/")
    try:
        count = int(count_text)
        period = parse_duration(period_text) if period_text.strip() else 3600.0
    except ValueError:
        raise ValueError("expected COUNT/PERIOD such as 200/1h or 50/10m") from None
    if not 1 <= count <= 1_000_000 or period <= 0:
        raise ValueError("expected a count from 1 to 1000000 over a positive period, such as 200/1h")
    return count, period


def parse_rate_or_off(text: str) -> tuple[int, float] | None:
    """`parse_rate`, or `off` (no limit) -> None."""
    if text.strip().lower() == "off":
        return None
    return parse_rate(text)


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def parse_origins(text: str) -> tuple[str, ...]:
    """`https://app.example.com,http://localhost:3000` (or `*`) -> a tuple of origins as a
    browser sends them in `Origin`: scheme://host[:port], no path, no trailing slash."""
    origins = tuple(part.strip() for part in text.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(f"'{origin}' is not an origin such as https://app.example.com or http://localhost:3000 "
                             "(scheme://host[:port], no path), or *")
    return origins


def _parse_bucket(text: str) -> str:
    if not BUCKET_PATTERN.match(text.strip()):
        raise ValueError("expected an S3 bucket name: 3-63 lower-case letters, digits or '-'")
    return text.strip()


def _parse_url_ttl(text: str) -> float:
    seconds = parse_duration(text)
    if not 60 <= seconds <= MAX_PRESIGN_SECONDS:
        raise ValueError("expected a duration from 1m to 7d (the longest a SigV4 presigned URL lives)")
    return seconds


def _parse_url(text: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+.-]*://", text.strip()):
        raise ValueError("expected a URL such as http://127.0.0.1:4566")
    return text.strip()


def _parse_bind_host(text: str) -> str:
    import ipaddress  # noqa: PLC0415 - one setting needs it

    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError("expected an IP address to listen on, such as 127.0.0.1 or 0.0.0.0") from None


def _parse_emulator_token(text: str) -> str:
    if len(text.strip()) < 16:
        raise ValueError("expected at least 16 characters (make run generates one)")
    return text.strip()


def _parse_retention(text: str) -> float | None:
    """A retention duration (`7d`, `12h`), or `off` (kept forever)."""
    if text.strip().lower() in ("off", "forever", "none"):
        return None
    seconds = parse_duration(text)
    if seconds < 60:
        raise ValueError("expected a duration of at least 1m (e.g. 7d, 12h), or off")
    return seconds


def _parse_database_url(text: str) -> str:
    if not re.match(r"^postgres(ql)?://", text.strip()):
        raise ValueError("expected a postgresql:// or postgres:// URL")
    return text.strip()
