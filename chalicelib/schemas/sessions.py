"""Request and response models of the sessions API (pydantic v2; also the OpenAPI schemas)."""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from datetime import datetime
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from chalicelib.schemas.base import Model, Strict

SESSION_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{2,63}$"
EVENT_PATTERN = re.compile(r"^(\*|[a-z][a-z_]*\.(\*|[a-z][a-z_]*))$")
METADATA_MAX_BYTES = 16 * 1024
STATUSES = ("disconnected", "connecting", "connected", "authenticated", "error")
# literal segments under /sessions/: a session with one of these ids could not be reached
RESERVED_SESSION_IDS = frozenset({"export", "import"})


def check_session_id(value: str) -> str:
    if value in RESERVED_SESSION_IDS:
        raise ValueError(f"'{value}' is reserved (/sessions/{value} is a route)")
    return value




def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if len(value) > 2048:
        raise ValueError("must be at most 2048 characters")
    return value


WEBHOOK_SECRET_PREFIX = "whsec_"
WEBHOOK_SECRET_MIN_BYTES = 24
WEBHOOK_SECRET_MAX_BYTES = 64


def check_webhook_secret(value: str) -> str:
    """Only what Standard Webhooks libraries verify with: `whsec_` + standard base64 (with
    its padding) of 24 to 64 bytes. Any other text used to be signed with its UTF-8 bytes,
    which no library reproduces, so receivers could not verify. The message never
    repeats the secret."""
    if not value.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"must be '{WEBHOOK_SECRET_PREFIX}' followed by base64")
    encoded = value[len(WEBHOOK_SECRET_PREFIX):]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = None
    if key is None or base64.b64encode(key).decode() != encoded:
        raise ValueError(f"must be '{WEBHOOK_SECRET_PREFIX}' followed by standard base64 (A-Z a-z 0-9 + /, '=' padding)")
    if not WEBHOOK_SECRET_MIN_BYTES <= len(key) <= WEBHOOK_SECRET_MAX_BYTES:
        raise ValueError(f"must encode {WEBHOOK_SECRET_MIN_BYTES} to {WEBHOOK_SECRET_MAX_BYTES} bytes "
                         f"(this one encodes {len(key)})")
    return value


class WebhookIn(Strict):
    url: str = Field(description="http(s) URL that receives the events")
    events: list[str] = Field(default_factory=list, max_length=64,
                              description="patterns such as 'message.*' or 'session.connected'; empty = all")
    secret: Optional[str] = Field(default=None, max_length=256,
                                  description="signing secret in the Standard Webhooks form, 'whsec_' + base64 "
                                              f"of {WEBHOOK_SECRET_MIN_BYTES} to {WEBHOOK_SECRET_MAX_BYTES} bytes; "
                                              "generated when omitted")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_webhook_secret(value)

    @field_validator("events")
    @classmethod
    def _patterns(cls, events: list[str]) -> list[str]:
        for pattern in events:
            if not EVENT_PATTERN.match(pattern):
                raise ValueError(f"'{pattern}' is not an event pattern such as 'message.*' or 'session.connected'")
        return sorted(set(events))


PROXY_HOST_PATTERN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")


class ProxyIn(Strict):
    enabled: bool = True
    type: Literal["http", "https", "socks5"] = "http"
    # validate_default: a missing host/port is reported on the field itself ("proxy.host")
    host: Optional[str] = Field(default=None, min_length=1, max_length=255, validate_default=True,
                                description="host name or IP address, without scheme or port")
    port: Optional[int] = Field(default=None, ge=1, le=65535, validate_default=True)
    username: Optional[str] = Field(default=None, max_length=255)
    password: Optional[str] = Field(default=None, max_length=255,
                                    description="write-only; omitted keeps the stored one, null clears it")

    @field_validator("host")
    @classmethod
    def _host(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if not value:
            if info.data.get("enabled", True):
                raise ValueError("required when the proxy is enabled")
            return None
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            pass
        if not PROXY_HOST_PATTERN.match(value):
            raise ValueError("must be a host name or an IP address, without scheme, port or path")
        return value.lower()

    @field_validator("port")
    @classmethod
    def _port(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        if value is None and info.data.get("enabled", True):
            raise ValueError("required when the proxy is enabled")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value and ":" in value and info.data.get("type") in ("http", "https"):
            raise ValueError("must not contain ':' for an HTTP proxy (Basic authentication)")
        return value or None


def check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":"))) > METADATA_MAX_BYTES:
        raise ValueError(f"must be at most {METADATA_MAX_BYTES} bytes as JSON")
    return value


class CreateSessionRequest(Strict):
    name: str = Field(min_length=1, max_length=100)
    session_id: Optional[str] = Field(default=None, pattern=SESSION_ID_PATTERN,
                                      description="slug; generated when omitted")
    api_key: Optional[str] = Field(default=None, min_length=24, max_length=256,
                                   description="the session's key; generated (256 bits) when omitted")
    webhook: Optional[WebhookIn] = None
    webhook_url: Optional[str] = Field(default=None, description="seed alias of webhook.url")
    proxy: Optional[ProxyIn] = None
    auto_reconnect: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_http_url(value)

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_session_id(value)

    @field_validator("api_key")
    @classmethod
    def _key_printable(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not re.fullmatch(r"[\x21-\x7e]+", value):
            raise ValueError("must be printable ASCII without spaces")
        return value

    @model_validator(mode="after")
    def _one_webhook(self) -> "CreateSessionRequest":
        if self.webhook and self.webhook_url:
            raise ValueError("give either webhook or webhook_url, not both")
        if self.webhook_url:
            self.webhook = WebhookIn(url=self.webhook_url)
            self.webhook_url = None
        return self


class BehaviourIn(Strict):
    """Per-session behaviour the runner applies to a connected session without reconnecting
    (runner_container/behaviour.py). Only the fields given change."""
    always_online: Optional[bool] = Field(default=None, description="keep the account's presence 'available' "
                                          "(sent at every login and when turned on; 'unavailable' when turned off)")
    ignore_groups: Optional[bool] = Field(default=None, description="drop events of group chats (not stored, "
                                          "not emitted)")
    ignore_status_broadcast: Optional[bool] = Field(default=None, description="drop events of status@broadcast "
                                                    "(contacts' statuses)")
    auto_read: Optional[bool] = Field(default=None, description="send read receipts for received messages")
    reject_calls: Optional[bool] = Field(default=None, description="reject every incoming call (event call.rejected)")
    reject_call_message: Optional[str] = Field(default=None, min_length=1, max_length=4096,
                                               description="text sent to a rejected caller; null: none")
    send_rate: Optional[int] = Field(default=None, ge=1, le=600, strict=True,
                                     description="messages a minute this session sends at most (sends over it wait "
                                                 "in the session's order, never dropped); null: unlimited")
    typing_simulation: Optional[bool] = Field(default=None, description="'composing' in the chat before each text, "
                                              "for a time proportional to its length (0.5 to 5 s)")


BEHAVIOUR_FIELDS = tuple(BehaviourIn.model_fields)
NULLABLE_BEHAVIOUR = ("reject_call_message", "send_rate")  # null clears it (the others: null changes nothing)


class UpdateSessionRequest(BehaviourIn):
    name: Optional[str] = Field(default=None, min_length=1, max_length=100)
    webhook: Optional[WebhookIn] = Field(default=None, description="null removes the webhook")
    proxy: Optional[ProxyIn] = Field(default=None, description="null removes the proxy")
    auto_reconnect: Optional[bool] = None
    metadata: Optional[dict[str, Any]] = None

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        return None if value is None else check_metadata(value)


class ListSessionsQuery(Model):
    model_config = ConfigDict(extra="ignore")
    status: Optional[Literal["disconnected", "connecting", "connected", "authenticated", "error"]] = None
    name: Optional[str] = Field(default=None, max_length=100, description="substring, case-insensitive")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class ProxyOut(Model):
    enabled: bool
    type: Optional[str] = None
    host: Optional[str] = None
    port: Optional[int] = None
    username: Optional[str] = None
    has_password: bool = False
    status: Literal["active", "inactive"]


class WebhookOut(Model):
    url: Optional[str] = None
    events: list[str] = Field(default_factory=list)
    last_sent: Optional[datetime] = None
    status: Literal["active", "failing", "disabled", "inactive"]


class BehaviourOut(Model):
    always_online: bool = False
    ignore_groups: bool = False
    ignore_status_broadcast: bool = False
    auto_read: bool = False
    reject_calls: bool = False
    reject_call_message: Optional[str] = None
    send_rate: Optional[int] = None
    typing_simulation: bool = False


class SessionOut(BehaviourOut):
    id: str
    session_id: str
    name: str
    status: Literal["disconnected", "connecting", "connected", "authenticated", "error"]
    jid: Optional[str] = None
    connected_at: Optional[datetime] = None
    last_activity: Optional[datetime] = None
    auto_reconnect: bool
    proxy: ProxyOut
    webhook: WebhookOut
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]


class SessionCreated(Model):
    session_id: str
    id: str
    name: str
    api_key: str = Field(description="shown once; only its digest is stored")
    status: str
    created_at: datetime
    webhook_secret: Optional[str] = Field(default=None, description="shown once when a webhook is set")


class SessionKeyRotated(Model):
    session_id: str
    api_key: str = Field(description="the new key, shown once; the previous key is refused from now on")
    rotated_at: datetime


class SessionUpdated(SessionOut):
    webhook_secret: Optional[str] = Field(default=None, description="shown once when the webhook changed")


class SessionList(Model):
    sessions: list[SessionOut]
    total: int
    limit: int
    offset: int


class AuditQuery(Model):
    model_config = ConfigDict(extra="ignore")
    session_id: Optional[str] = Field(default=None, max_length=64)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditEntry(Model):
    id: int
    at: datetime
    actor: str
    action: str
    session_id: Optional[str] = None
    request_id: Optional[str] = None
    details: dict[str, Any]


class AuditList(Model):
    entries: list[AuditEntry]
