"""Circuit breaker per endpoint URL (state in `webhook_endpoints`, shared by every dispatcher).

closed --N consecutive failures--> open --cooldown--> half_open (one probe delivery)
half_open --probe succeeds--> closed;  half_open --probe fails--> open (cooldown again)
any state --HTTP 410--> disabled (until a redeliver through the API re-enables it)

While an endpoint is open or half-open (probe in flight), its deliveries are not sent:
they are parked in the database (status `retrying` without a next attempt time; not
counted as attempts), so a dead endpoint is neither hammered nor costs queue traffic per
event. Opening sends one timer message (`webhook.probe`) delayed by the cooldown; when it
arrives the oldest parked delivery is the half-open probe. A successful probe (or any
success) closes the breaker and puts every parked delivery back on the queue; a failed
one reopens it with a new timer. Parked deliveries older than the whole retry schedule
end `failed` (dead letters); a 410 fails them at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


GO = "go"
PROBE = "probe"
DEFER = "defer"
DISABLED = "disabled"


@dataclass(frozen=True)
class BreakerConfig:
    threshold: int = 5          # consecutive failures that open the breaker
    cooldown: float = 30.0      # seconds open before a half-open probe
    probe_timeout: float = 60.0  # a probe older than this (its dispatcher died) may be re-claimed

    @classmethod
    def from_settings(cls, settings: Any) -> "BreakerConfig":
        """WEBHOOK_BREAKER_THRESHOLD, WEBHOOK_BREAKER_COOLDOWN (read by `Settings`); a probe
        may run a whole WEBHOOK_TIMEOUT before another dispatcher re-claims it."""
        return cls(threshold=settings.webhook_breaker_threshold, cooldown=settings.webhook_breaker_cooldown,
                   probe_timeout=settings.webhook_timeout + 30.0)


def decide(endpoint: dict[str, Any] | None, config: BreakerConfig) -> tuple[str, float]:
    """What to do with a delivery to this endpoint now: (GO|PROBE|DEFER|DISABLED, defer seconds).

    PROBE means "may probe if the claim succeeds" (the caller claims it atomically).
    """
    if endpoint is None or endpoint["state"] == "closed":
        return GO, 0.0
    state = endpoint["state"]
    if state == "disabled":
        return DISABLED, 0.0
    if state == "open":
        open_for = float(endpoint.get("open_for") or 0.0)
        if open_for >= config.cooldown:
            return PROBE, 0.0
        return DEFER, max(1.0, config.cooldown - open_for)
    # half_open: a probe is in flight
    probing_for = float(endpoint.get("probing_for") or 0.0)
    if probing_for >= config.probe_timeout:
        return PROBE, 0.0
    return DEFER, max(1.0, min(config.cooldown, config.probe_timeout - probing_for))
