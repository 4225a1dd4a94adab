"""Request and response models of the connection routes and the command bus (issue 4)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field, field_validator

from chalicelib.schemas.base import Model
from chalicelib.schemas.sessions import Strict

E164_DIGITS = re.compile(r"^[1-9][0-9]{6,14}$")
Status = Literal["disconnected", "connecting", "connected", "authenticated", "error"]


class ConnectAnswer(Model):
    session_id: str
    status: str = Field(description="connecting / disconnecting / logging_out while the runner works; "
                                    "the session's status when nothing had to be done")
    command_id: Optional[str] = Field(default=None, description="the queued command, when one was queued")
    message: str


class StatusOut(Model):
    session_id: str
    status: Status
    desired_state: Literal["connected", "disconnected"]
    connected: bool = Field(description="the socket is up")
    logged_in: bool = Field(description="a WhatsApp device is paired and logged in")
    jid: Optional[str] = None
    last_error: Optional[str] = Field(default=None, description="snake_case reason of the last failure")
    status_reason: Optional[str] = None
    runner_id: Optional[str] = Field(default=None, description="the runner holding the session")
    since: datetime = Field(description="when the current status began")
    connected_since: Optional[datetime] = None
    qr_available: bool = False


class StatsOut(Model):
    session_id: str
    status: Status
    messages_sent: int
    messages_received: int
    reconnects: int
    uptime_seconds: Optional[float] = Field(default=None, description="seconds since the current connection began")
    last_activity: Optional[datetime] = None
    last_connected_at: Optional[datetime] = None
    webhook: dict[str, int] = Field(description="webhook deliveries by status")


class QrQuery(Model):
    model_config = ConfigDict(extra="ignore")
    format: Literal["json", "png", "terminal"] = "json"
    wait: int = Field(default=0, ge=0, le=25, description="seconds to wait for a code to appear")


class QrOut(Model):
    session_id: str
    qr_code: str = Field(description="the string to encode (whatsmeow's ref,noiseKey,identityKey,advSecret)")
    image: str = Field(description="data:image/png;base64,...")
    expires_at: datetime
    status: Status


class PairPhoneRequest(Strict):
    phone: str = Field(description="E.164 number, digits only (a leading + and spaces are accepted)")
    show_push_notification: bool = True

    @field_validator("phone", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a string of digits")
        digits = re.sub(r"[\s()-]", "", value).removeprefix("+")
        if not E164_DIGITS.match(digits):
            raise ValueError("must be an E.164 phone number: country code and number, 7 to 15 digits")
        return digits


class PairPhoneOut(Model):
    session_id: str
    pairing_code: str = Field(description="enter it in WhatsApp > Linked devices > Link with phone number")
    command_id: str


class CommandOut(Model):
    command_id: str
    session_id: str
    type: str
    status: Literal["queued", "running", "succeeded", "failed"]
    result: Optional[dict[str, Any]] = None
    error: Optional[dict[str, Any]] = None
    attempts: int
    idempotency_key: Optional[str] = None
    created_at: Optional[datetime] = None
    started_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
