"""Request and response models of the webhook routes (also their OpenAPI schemas)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field, field_validator

from chalicelib.schemas.base import Model
from chalicelib.schemas.sessions import Strict, check_http_url

DELIVERY_STATUSES = ("pending", "delivering", "succeeded", "retrying", "failed", "skipped")
EVENT_NAME = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
EVENT_FILTER = re.compile(r"^[a-z][a-z_]*\.(\*|[a-z][a-z_]*)$")


class DeliveriesQuery(Model):
    model_config = ConfigDict(extra="ignore")
    status: Optional[Literal["pending", "delivering", "succeeded", "retrying", "failed", "skipped"]] = None
    event: Optional[str] = Field(default=None, max_length=100, description="event name or 'message.*'")
    since: Optional[datetime] = Field(default=None, description="created at or after (ISO 8601)")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("event")
    @classmethod
    def _event(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not EVENT_FILTER.match(value):
            raise ValueError("expected an event name such as 'message.received' or a pattern such as 'message.*'")
        return value


class AttemptOut(Model):
    attempt: int
    at: datetime
    outcome: Literal["succeeded", "retry", "failed", "disabled", "refused"]
    http_status: Optional[int] = None
    latency_ms: Optional[int] = None
    response_excerpt: Optional[str] = None
    error: Optional[str] = None


class DeliveryOut(Model):
    id: str
    event_id: str
    session_id: str
    event: str
    url: str
    status: Literal["pending", "delivering", "succeeded", "retrying", "failed", "skipped"]
    attempt: int = Field(description="HTTP attempts made so far (every round)")
    http_status: Optional[int] = None
    latency_ms: Optional[int] = None
    response_excerpt: Optional[str] = Field(default=None, description="first 1 KB of the last answer")
    error: Optional[str] = None
    next_attempt_at: Optional[datetime] = None
    last_attempt_at: Optional[datetime] = None
    created_at: datetime
    updated_at: datetime
    payload: Optional[dict[str, Any]] = None
    attempts: Optional[list[AttemptOut]] = None


class DeliveryList(Model):
    deliveries: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class RedeliverAccepted(Model):
    delivery_id: str
    status: Literal["pending"]


class BulkRedeliverRequest(Strict):
    status: Literal["failed", "skipped", "succeeded"] = Field(default="failed")
    since: Optional[datetime] = Field(default=None, description="deliveries created at or after")
    event: Optional[str] = Field(default=None, max_length=100)
    limit: int = Field(default=1000, ge=1, le=10000)

    @field_validator("event")
    @classmethod
    def _event(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not EVENT_NAME.match(value):
            raise ValueError("expected an event name such as 'message.received'")
        return value


class BulkRedeliverAccepted(Model):
    count: int
    delivery_ids: list[str]


class PreviousSecret(Model):
    fingerprint: str = Field(description="first 16 hex digits of sha256 of the secret text (never the secret)")
    expires_at: datetime = Field(description="it signs every delivery until then")


class RotateSecretOut(Model):
    webhook_secret: str = Field(description="the new secret, shown once")
    fingerprint: str = Field(description="the new secret's fingerprint (first 16 hex digits of its sha256)")
    previous_secret_expires_at: Optional[datetime] = Field(
        default=None, description="until then the secret just replaced signs too (space-separated signatures)")
    previous_secrets: list[PreviousSecret] = Field(
        default_factory=list, description="every previous secret that still signs, oldest first, with its expiry")
    max_previous_secrets: int = Field(description="at most this many previous secrets sign at once; "
                                                  "a rotation beyond is 409 too_many_webhook_secrets")


class SendWebhookRequest(Strict):
    session_id: str = Field(min_length=3, max_length=64)
    event: str = Field(default="webhook.test", max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    url: Optional[str] = Field(default=None, description="deliver here instead of the session's webhook URL")

    @field_validator("event")
    @classmethod
    def _event(cls, value: str) -> str:
        if not EVENT_NAME.match(value):
            raise ValueError("expected an event name such as 'webhook.test'")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_http_url(value)


class SendWebhookAccepted(Model):
    delivery_id: str
    event_id: str
    url: str
    status: Literal["pending"]


class BreakerOut(Model):
    url: str
    state: Literal["closed", "open", "half_open", "disabled"]
    consecutive_failures: int
    opened_at: Optional[datetime] = None
    disabled_reason: Optional[str] = None


class WebhookStats(Model):
    session_id: Optional[str] = None
    webhook_status: Optional[str] = Field(default=None, description="active|failing|disabled|inactive")
    deliveries: dict[str, int] = Field(description="count by status")
    total: int
    window_seconds: int
    attempts_in_window: int
    success_rate: Optional[float] = Field(default=None, description="succeeded attempts / attempts in the window")
    latency_p50_ms: Optional[float] = None
    latency_p95_ms: Optional[float] = None
    queue_depth: Optional[int] = None
    dlq_depth: Optional[int] = None
    breakers: list[BreakerOut]
