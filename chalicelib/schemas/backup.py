"""Export and import of session configuration (chalicelib/services/backup.py).

One document shape for both exports (one session or all) and for the import body, so an
import accepts what either export returned, unchanged.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field, field_validator

from chalicelib.schemas.base import Model, Strict
from chalicelib.schemas.sessions import (SESSION_ID_PATTERN, BehaviourIn, ProxyIn, WebhookIn, check_http_url, check_metadata,
                                         check_session_id)

FORMAT = "zemeow.sessions"
MAX_SESSIONS_PER_DOCUMENT = 1000


class ExportQuery(Model):
    model_config = ConfigDict(extra="ignore")
    include_secrets: bool = Field(default=False, description="seal the webhook secret, proxy password and key "
                                                             "digest with the X-Export-Passphrase header")


class ExportAllQuery(ExportQuery):
    limit: int = Field(default=500, ge=1, le=MAX_SESSIONS_PER_DOCUMENT)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class Sealed(Strict):
    nonce: str = Field(max_length=64)
    ciphertext: str = Field(max_length=8192)


class Encryption(Strict):
    kdf: Literal["scrypt"]
    n: int
    r: int = Field(ge=1, le=32)
    p: int = Field(ge=1, le=16)
    salt: str = Field(max_length=64)
    cipher: Literal["AES-256-GCM"]


class ExportedProxy(ProxyIn):
    """A proxy as exported: no password (it travels sealed, in `secrets`)."""

    password: None = Field(default=None, exclude=True)


class ExportedWebhook(Strict):
    """A webhook as exported: URL and events (the secret travels sealed, in `secrets`). Not a
    `WebhookIn`: no `secret` field at all, so a plaintext secret in a document is refused."""

    url: str
    events: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("events")
    @classmethod
    def _patterns(cls, events: list[str]) -> list[str]:
        return WebhookIn._patterns(events)


class ExportedSession(Strict):
    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    auto_reconnect: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)
    webhook: Optional[ExportedWebhook] = None
    proxy: Optional[ExportedProxy] = None
    behaviour: Optional[BehaviourIn] = Field(default=None, description="the session's behaviour settings "
                                             "(absent in older exports: all off)")
    secrets: Optional[Sealed] = Field(default=None, description="present when exported with include_secrets")

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, value: str) -> str:
        return check_session_id(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)


class ExportWarning(Model):
    session_id: str
    code: Literal["secret_unreadable"]
    secret: str = Field(description="which secret was left out: webhook_secret or proxy_password")
    message: str


class ExportDocument(Strict):
    format: Literal["zemeow.sessions"] = FORMAT
    version: Literal[1] = 1
    exported_at: Optional[datetime] = None
    total: Optional[int] = Field(default=None, description="sessions in the deployment (GET /sessions/export)")
    offset: Optional[int] = None
    next_offset: Optional[int] = Field(default=None, description="the next page's offset, when there is one")
    encryption: Optional[Encryption] = Field(default=None, description="how `secrets` are sealed (see README)")
    sessions: list[ExportedSession] = Field(max_length=MAX_SESSIONS_PER_DOCUMENT)
    warnings: Optional[list[ExportWarning]] = Field(default=None, max_length=2 * MAX_SESSIONS_PER_DOCUMENT,
                                          description="secrets left out of an export (they could not be "
                                                      "decrypted); an import ignores this list")


class ImportResult(Model):
    session_id: str
    status: Literal["created", "conflict", "failed"]
    id: Optional[str] = Field(default=None, description="the new session row's id")
    api_key: Optional[str] = Field(default=None, description="a new key, shown once (none when the exported "
                                                              "key digest was kept)")
    key_kept: Optional[bool] = None
    webhook_secret: Optional[str] = Field(default=None, description="a new webhook secret, shown once (when the "
                                                                     "document carried none)")
    code: Optional[str] = None
    message: Optional[str] = None


class ImportAnswer(Model):
    created: int
    conflicts: int
    failed: int
    results: list[ImportResult]
