"""Chats, contacts and groups: read receipts, presence, number checks, group management."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional
from urllib.parse import unquote

from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator

from chalicelib.errors import ValidationFailed
from chalicelib.messaging.recipients import (LID_SERVER, USER_SERVER, InvalidRecipient,
                                             normalise_phone, normalise_recipient)
from chalicelib.schemas.base import Model, Strict

MAX_READ_IDS = 100
MAX_GROUP_PARTICIPANTS = 256  # WhatsApp's group size limit is larger; one request changes at most this many
ACCOUNT_STATES = ("available", "unavailable")
CHAT_STATES = ("composing", "recording", "paused")
_GROUP_JID = re.compile(r"^[0-9]{5,32}(-[0-9]{5,15})?@g\.us$")


def _recipient(value: str) -> str:
    try:
        return normalise_recipient(value)
    except InvalidRecipient as exc:
        raise ValueError(str(exc)) from None


def _person(value: str) -> str:
    """A phone or a user JID (…@s.whatsapp.net, …@lid) -> its JID; groups are refused."""
    jid = _recipient(value)
    if not jid.endswith((f"@{USER_SERVER}", f"@{LID_SERVER}")):
        raise ValueError("expected a phone number or a user JID (…@s.whatsapp.net or …@lid)")
    return jid


def contact_phone(value: str) -> str:
    """A phone as digits, from digits, +E.164 or `<digits>@s.whatsapp.net`."""
    text = value.strip()
    try:
        if "@" in text:
            jid = normalise_recipient(text)
            if not jid.endswith(f"@{USER_SERVER}"):
                raise InvalidRecipient("expected a phone number (or a …@s.whatsapp.net JID)")
            return jid.split("@", 1)[0]
        return normalise_phone(text)
    except InvalidRecipient as exc:
        raise ValueError(str(exc)) from None


def _checked_phone(value: str) -> str:
    contact_phone(value)
    return value.strip()  # the caller's form is echoed back as `input`


def group_jid(text: str) -> str:
    """The `{group_jid}` path parameter: `<digits>@g.us` (or an old `<phone>-<time>@g.us`)."""
    value = unquote(text).strip()
    if not _GROUP_JID.match(value):
        raise ValidationFailed(f"'{value[:80]}' is not a group JID", details=[{
            "field": "group_jid", "message": "expected a group JID such as 120363012345678901@g.us",
            "type": "group_jid"}])
    return value


Person = Annotated[str, AfterValidator(_person)]
MessageId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z._:-]+$")]


def _distinct(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value} is listed twice")
        seen.add(value)
    return values


# -- requests ---------------------------------------------------------------------------
class WaitQuery(Model):
    model_config = ConfigDict(extra="ignore")
    wait: bool = Field(default=False, description="wait for the runner and answer 200 when it is done")


class MarkReadRequest(Strict):
    chat: Annotated[str, AfterValidator(_recipient)] = Field(
        description="the chat: phone digits, +E.164, or a JID (…@s.whatsapp.net, …@g.us)")
    message_ids: list[MessageId] = Field(min_length=1, max_length=MAX_READ_IDS)
    sender: Optional[str] = Field(default=None, validate_default=True,
                                  description="who sent the messages (phone or user JID). In a group, "
                                              "leave it out to let the runner find each message's author "
                                              "in its message log")

    @field_validator("message_ids")
    @classmethod
    def _distinct_ids(cls, values: list[str]) -> list[str]:
        return _distinct(values, "message id")

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is not None:
            return _person(value)
        return None


class PresenceRequest(Strict):
    state: Literal["available", "unavailable", "composing", "recording", "paused"] = Field(
        description="available/unavailable: the account (no chat); composing/recording/paused: in `chat`")
    chat: Optional[str] = Field(default=None, validate_default=True,
                                description="phone or JID of the chat (with composing/recording/paused)")

    @field_validator("chat")
    @classmethod
    def _chat(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        state = info.data.get("state")
        if state in ACCOUNT_STATES and value is not None:
            raise ValueError(f"state {state} is the account's presence; give no chat")
        if state in CHAT_STATES and not value:
            raise ValueError(f"state {state} needs a chat")
        return None if value is None else _recipient(value)


class ContactsCheckRequest(Strict):
    phones: list[Annotated[str, AfterValidator(_checked_phone)]] = Field(
        min_length=1, max_length=500,
        description="phone digits, +E.164 or …@s.whatsapp.net; at most CONTACTS_CHECK_MAX_BATCH (default 50)")


# 1..MAX_GROUP_PARTICIPANTS people, each once
Participants = Annotated[list[Person], Field(min_length=1, max_length=MAX_GROUP_PARTICIPANTS),
                         AfterValidator(lambda values: _distinct(values, "participant"))]


class CreateGroupRequest(Strict):
    name: str = Field(min_length=1, max_length=100)
    participants: Participants


class ParticipantsRequest(Strict):
    action: Literal["add", "remove", "promote", "demote"]
    participants: Participants


# -- answers ----------------------------------------------------------------------------
class CommandAccepted(Model):
    command_id: str
    status: str


class CommandDone(Model):
    command_id: str
    status: Literal["succeeded"]
    result: dict[str, Any] = Field(default_factory=dict)


class ContactResult(Model):
    input: str
    phone: str
    on_whatsapp: bool
    jid: Optional[str] = None
    verified_name: Optional[str] = None


class RateLimitOut(Model):
    limit: int = Field(description="numbers per period")
    period_seconds: float
    remaining: int
    reset_seconds: int = Field(description="seconds until the allowance is full again")


class ContactsCheckOut(Model):
    command_id: str
    results: list[ContactResult]
    rate_limit: RateLimitOut


class GroupParticipantOut(Model):
    jid: str
    phone: Optional[str] = None
    is_admin: bool
    is_super_admin: bool


class GroupOut(Model):
    jid: str
    name: str
    topic: Optional[str] = None
    owner: Optional[str] = None
    participants_count: int
    created_at: Optional[str] = None
    is_announce: bool
    is_locked: bool


class GroupDetail(GroupOut):
    participants: list[GroupParticipantOut]
    command_id: Optional[str] = None


class GroupList(Model):
    command_id: str
    groups: list[GroupOut]


class ParticipantResult(Model):
    jid: str
    phone: Optional[str] = None
    ok: bool
    error: Optional[str] = Field(default=None, description="why this participant was not changed "
                                                           "(not_on_whatsapp, already_member, not_member, ...)")


class ParticipantsOut(Model):
    command_id: str
    group_jid: str
    action: str
    participants: list[ParticipantResult]
