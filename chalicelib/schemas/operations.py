"""Models of the operational routes (/health, /ready)."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field

from chalicelib.schemas.base import Model


class HealthChecks(Model):
    database: str = Field(description="'ok' or 'error: <reason>'")
    whatsapp_manager: str = Field(description="a runner heartbeat within RUNNER_LEASE_TTL")
    webhook_service: str = Field(description="the events queue answers")
    active_sessions: Optional[int] = None


class HealthOut(Model):
    status: Literal["ok", "unavailable"]
    timestamp: int
    version: str
    checks: HealthChecks
    failing: Optional[list[str]] = None


class ReadyOut(Model):
    ready: bool
    services: dict[str, bool]
    details: dict[str, Union[str, dict[str, Any]]]
    timestamp: int
    failing: Optional[list[str]] = None
