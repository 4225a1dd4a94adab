"""When to retry a webhook delivery, and after how long.

Outcomes of one attempt (`classify`):
- 2xx: succeeded;
- 410 Gone: the endpoint is disabled (no more deliveries until a redeliver re-enables it);
- network error, timeout, 3xx (redirects are never followed), 429, 5xx: retry;
- any other 4xx, or a URL refused by the SSRF guard: failed at once, no retry.

Delays (`next_delay`) follow Svix's schedule (5s, 5m, 30m, 2h, 5h, 10h, 10h) truncated to
`WEBHOOK_RETRY_COUNT` retries (`WEBHOOK_RETRY_SCHEDULE` overrides it), each with ±20%
jitter, so a burst of failures does not come back as a burst. A `Retry-After` header
(seconds or an HTTP date) replaces the scheduled delay for that retry (capped at 24 h).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Callable

SUCCEEDED = "succeeded"
RETRY = "retry"
FAILED = "failed"
DISABLED = "disabled"
REFUSED = "refused"
MAX_RETRY_AFTER = 24 * 3600.0


def classify(status: int | None) -> str:
    """`status` None means no HTTP answer (network error or timeout)."""
    if status is None:
        return RETRY
    if 200 <= status < 300:
        return SUCCEEDED
    if status == 410:
        return DISABLED
    if status == 429 or status >= 500 or 300 <= status < 400:
        return RETRY
    return FAILED


def parse_retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, schedule: tuple[float, ...], retry_count: int, jitter: float = 0.2) -> "RetryPolicy":
        """The schedule truncated to `retry_count` retries (its last delay repeats if it is shorter)."""
        delays = list(schedule[:retry_count])
        while len(delays) < retry_count and schedule:
            delays.append(schedule[-1])
        return cls(tuple(delays), jitter)

    @property
    def retries(self) -> int:
        return len(self.schedule)

    @property
    def max_age(self) -> float:
        """How long a delivery may stay undelivered in total (used for breaker deferrals)."""
        return sum(self.schedule) * (1 + self.jitter) + 60.0

    def next_delay(self, round_attempt: int, retry_after: float | None = None,
                   rand: Callable[[float, float], float] = random.uniform) -> float | None:
        """Delay before the retry following attempt `round_attempt` (1-based), None when exhausted."""
        if round_attempt > self.retries:
            return None
        if retry_after is not None:
            return retry_after
        base = self.schedule[round_attempt - 1]
        return max(0.0, base * rand(1 - self.jitter, 1 + self.jitter))
