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
    """Anyone gets `ready` and `timestamp` (and the status code); `services`, `details`
    (queue names and depths, runners, reasons) and `failing` only with the admin key."""
    ready: bool
    timestamp: int
    services: Optional[dict[str, bool]] = Field(None, description="admin key only: each check passed or not")
    details: Optional[dict[str, Union[str, dict[str, Any]]]] = Field(
        None, description="admin key only: each check's detail (queue names and depths, reasons)")
    failing: Optional[list[str]] = Field(None, description="admin key only: the checks that failed")
