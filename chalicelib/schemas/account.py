"""Group administration, profile, privacy and blocklist (issue 17): requests and answers."""
from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from chalicelib.schemas.base import Model, Strict, check_base64
from chalicelib.schemas.chats import GroupDetail, ParticipantResult, Participants, Person

MAX_PICTURE_BYTES = 700 * 1024  # the runner's limit too (runner_container/wa_account.py); fits the API body
JPEG_MAGIC = b"\xff\xd8\xff"
INVITE_PREFIX = "https://chat.whatsapp.com/"
_INVITE = re.compile(r"^(?:(?:https?://)?chat\.whatsapp\.com/(?:invite/)?)?(?P<code>[A-Za-z0-9]{16,32})/?$")
MEDIA_KEY_PATTERN = r"^sessions/[0-9a-f-]{36}/(uploads|inbound)/[A-Za-z0-9._-]{1,200}$"

# what WhatsApp accepts per privacy setting (runner_container/wa_account.py PRIVACY_VALUES)
Audience = Literal["all", "contacts", "contacts_blacklist", "none"]


def invite_code(text: str) -> str:
    """A WhatsApp group invite: `https://chat.whatsapp.com/<code>` or the bare code."""
    match = _INVITE.match(text.strip())
    if not match:
        raise ValueError("expected a WhatsApp group invite link (https://chat.whatsapp.com/<code>) or its code")
    return match.group("code")


# -- requests ---------------------------------------------------------------------------
class InviteRequest(Strict):
    invite: Annotated[str, Field(max_length=200), AfterValidator(invite_code)] = Field(
        description="the invite link (https://chat.whatsapp.com/<code>) or its code")


class SubjectRequest(Strict):
    subject: str = Field(min_length=1, max_length=100, description="the group's name")


class DescriptionRequest(Strict):
    description: str = Field(max_length=2048, description="the group's description; empty removes it")


class PictureRequest(Strict):
    media_base64: Optional[str] = Field(default=None, description="a JPEG, base64; at most 700 KiB decoded")
    media_key: Optional[str] = Field(default=None, min_length=1, max_length=300, pattern=MEDIA_KEY_PATTERN,
                                     description="a JPEG in the media bucket under this session's prefix "
                                                 "(POST .../media/upload-url)")

    @field_validator("media_base64")
    @classmethod
    def _base64(cls, value: Optional[str]) -> Optional[str]:
        return check_base64(value)

    @model_validator(mode="after")
    def _one_source(self) -> "PictureRequest":
        if sum(bool(source) for source in (self.media_base64, self.media_key)) != 1:
            raise ValueError("give exactly one of media_base64 or media_key")
        return self


class GroupSettingsRequest(Strict):
    announce: Optional[bool] = Field(default=None, description="true: only admins send messages")
    locked: Optional[bool] = Field(default=None, description="true: only admins edit the group's info")

    @model_validator(mode="after")
    def _something(self) -> "GroupSettingsRequest":
        if self.announce is None and self.locked is None:
            raise ValueError("give announce, locked or both")
        return self


class JoinRequestsAction(Strict):
    action: Literal["approve", "reject"]
    participants: Participants


class PushNameRequest(Strict):
    name: str = Field(min_length=1, max_length=25, description="the name others see (WhatsApp's limit is 25)")


class AboutRequest(Strict):
    about: str = Field(max_length=139, description="the profile's about text (WhatsApp's limit is 139)")


class PrivacyRequest(Strict):
    last_seen: Optional[Audience] = None
    profile_photo: Optional[Audience] = None
    about: Optional[Audience] = None
    groups_add: Optional[Literal["all", "contacts", "contacts_blacklist"]] = None
    read_receipts: Optional[Literal["all", "none"]] = None

    @model_validator(mode="after")
    def _something(self) -> "PrivacyRequest":
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one setting")
        return self


class BlocklistRequest(Strict):
    contact: Person = Field(description="phone or user JID")
    action: Literal["block", "unblock"]


# -- answers ----------------------------------------------------------------------------
class GroupLeft(Model):
    command_id: str
    group_jid: str
    left: bool


class InviteLinkOut(Model):
    command_id: str
    group_jid: str
    link: str
    code: str


class GroupJoined(Model):
    command_id: str
    group_jid: str = Field(description="the group; when it approves members, a join request was filed")


class InvitePreview(GroupDetail):
    pass


class GroupChanged(Model):
    command_id: str
    group_jid: str
    subject: Optional[str] = None
    description: Optional[str] = None
    picture_id: Optional[str] = None
    announce: Optional[bool] = None
    locked: Optional[bool] = None


class JoinRequestOut(Model):
    jid: str
    phone: Optional[str] = None
    requested_at: Optional[str] = None


class JoinRequestsOut(Model):
    command_id: str
    group_jid: str
    requests: list[JoinRequestOut]


class JoinRequestsResult(Model):
    command_id: str
    group_jid: str
    action: str
    participants: list[ParticipantResult] = Field(description="one per participant: error no_request when "
                                                              "that person had not asked to join")


class ProfileChanged(Model):
    command_id: str
    push_name: Optional[str] = None
    about: Optional[str] = None
    picture_id: Optional[str] = None


class PrivacySettingsOut(Model):
    last_seen: Optional[str] = None
    profile_photo: Optional[str] = None
    about: Optional[str] = None
    groups_add: Optional[str] = None
    read_receipts: Optional[str] = None


class PrivacyOut(Model):
    command_id: str
    privacy: PrivacySettingsOut


class BlocklistOut(Model):
    command_id: str
    blocked: list[str] = Field(description="blocked user JIDs, sorted")
