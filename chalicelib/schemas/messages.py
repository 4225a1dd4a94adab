"""`POST /sessions/{session_id}/messages`: one model per message type, chosen by `type`."""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import ConfigDict, Field, RootModel, field_validator, model_validator

from chalicelib.messaging.recipients import InvalidRecipient, normalise_recipient
from chalicelib.schemas.base import Model, check_base64
from chalicelib.schemas.sessions import Strict, check_http_url

MAX_TEXT = 65536
MAX_CAPTION = 4096


class MessageBase(Strict):
    to: str = Field(description="phone digits, +E.164, or a JID (…@s.whatsapp.net, …@g.us)")
    quoted_message_id: Optional[str] = Field(default=None, min_length=1, max_length=128)
    idempotency_key: Optional[str] = Field(default=None, min_length=1, max_length=128,
                                           description="a repeated key returns the first command; nothing is sent twice")

    @field_validator("to")
    @classmethod
    def _recipient(cls, value: str) -> str:
        try:
            return normalise_recipient(value)
        except InvalidRecipient as exc:
            raise ValueError(str(exc)) from None


MAX_MENTIONS = 1024  # WhatsApp's largest groups


class Mentions(Strict):
    """`mentions` (people named with @ in the text or caption) and `mention_all` (a group's
    every participant, mentioned without @ names in the text)."""

    mentions: Optional[list[str]] = Field(default=None, max_length=MAX_MENTIONS,
                                description="phones or user JIDs: each is put in contextInfo.mentionedJID and "
                                            "written as @<number> in the text (appended when the text lacks it)")
    mention_all: Optional[bool] = Field(default=None, description="groups only: mention every participant (fetched "
                                                         "from WhatsApp when sending), without changing the text")

    @field_validator("mentions")
    @classmethod
    def _people(cls, values: Optional[list[str]]) -> Optional[list[str]]:
        if values is None:
            return None
        out = []
        for value in values:
            try:
                jid = normalise_recipient(value)
            except InvalidRecipient as exc:
                raise ValueError(f"'{value[:40]}': {exc}") from None
            if not jid.endswith(("@s.whatsapp.net", "@lid")):
                raise ValueError(f"'{value[:40]}' is not a person (a phone, …@s.whatsapp.net or …@lid)")
            out.append(jid)
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _all_in_groups(self):
        if self.mention_all and not getattr(self, "to", "").endswith("@g.us"):
            raise ValueError("mention_all needs a group recipient (…@g.us)")
        return self


class TextMessage(MessageBase, Mentions):
    type: Literal["text"]
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    link_preview: bool = False


class MediaMessage(MessageBase):
    media_url: Optional[str] = Field(default=None, description="http(s) URL the runner downloads (size-capped)")
    media_base64: Optional[str] = Field(default=None, description="the file, base64; within the API body limit")
    media_key: Optional[str] = Field(default=None, min_length=1, max_length=300,
                                     pattern=r"^sessions/[0-9a-f-]{36}/(uploads|inbound)/[A-Za-z0-9._-]{1,200}$",
                                     description="a file in the media bucket under this session's prefix: from "
                                                 "POST .../media/upload-url, or a received message's media")
    caption: Optional[str] = Field(default=None, max_length=MAX_CAPTION)
    filename: Optional[str] = Field(default=None, max_length=255)
    mime_type: Optional[str] = Field(default=None, max_length=127, pattern=r"^[\w.+-]+/[\w.+-]+$")

    @field_validator("media_url")
    @classmethod
    def _url(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_http_url(value)

    @field_validator("media_base64")
    @classmethod
    def _base64(cls, value: Optional[str]) -> Optional[str]:
        return check_base64(value)

    @model_validator(mode="after")
    def _one_source(self):
        if sum(bool(source) for source in (self.media_url, self.media_base64, self.media_key)) != 1:
            raise ValueError("give exactly one of media_url, media_base64 or media_key")
        return self


class ImageMessage(MediaMessage, Mentions):
    type: Literal["image"]
    view_once: bool = Field(default=False, description="the recipient can open it once (viewOnce set)")


class VideoMessage(MediaMessage, Mentions):
    type: Literal["video"]
    view_once: bool = Field(default=False, description="the recipient can open it once (viewOnce set)")


class AudioMessage(MediaMessage):
    type: Literal["audio"]
    voice_note: bool = Field(default=False, description="send as a push-to-talk voice note")


class DocumentMessage(MediaMessage, Mentions):
    type: Literal["document"]


class StickerMessage(MediaMessage):
    type: Literal["sticker"]


class LocationMessage(MessageBase):
    type: Literal["location"]
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: Optional[str] = Field(default=None, max_length=256)
    address: Optional[str] = Field(default=None, max_length=512)


class ContactMessage(MessageBase):
    type: Literal["contact"]
    vcard: str = Field(min_length=10, max_length=16384)
    display_name: Optional[str] = Field(default=None, max_length=256)

    @field_validator("vcard")
    @classmethod
    def _vcard(cls, value: str) -> str:
        if not value.lstrip().upper().startswith("BEGIN:VCARD") or "END:VCARD" not in value.upper():
            raise ValueError("must be a vCard (BEGIN:VCARD ... END:VCARD)")
        return value


class ReactionMessage(MessageBase):
    type: Literal["reaction"]
    message_id: str = Field(min_length=1, max_length=128)
    emoji: str = Field(max_length=16, description="empty string removes the reaction")
    from_me: bool = Field(default=False, description="the reacted message was sent by this session")


class EditMessage(MessageBase):
    type: Literal["edit"]
    message_id: str = Field(min_length=1, max_length=128)
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class RevokeMessage(MessageBase):
    type: Literal["revoke"]
    message_id: str = Field(min_length=1, max_length=128)


class PollMessage(MessageBase):
    type: Literal["poll"]
    question: str = Field(min_length=1, max_length=255)
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=2, max_length=12)
    selectable_count: int = Field(default=1, ge=0, le=12, description="0 = any number")

    @field_validator("options")
    @classmethod
    def _distinct(cls, options: list[str]) -> list[str]:
        if len(set(options)) != len(options):
            raise ValueError("options must be distinct")
        return options


AnyMessage = Annotated[
    Union[TextMessage, ImageMessage, VideoMessage, AudioMessage, DocumentMessage, StickerMessage,
          LocationMessage, ContactMessage, ReactionMessage, EditMessage, RevokeMessage, PollMessage],
    Field(discriminator="type"),
]
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


class SendMessageRequest(RootModel[AnyMessage]):
    """The body of POST /sessions/{session_id}/messages (one of the message types)."""

    model_config = ConfigDict(defer_build=True)


class SendQuery(Model):
    model_config = ConfigDict(extra="ignore")
    wait: bool = Field(default=False, description="wait for the runner and answer with WhatsApp's message id")


class MessageAccepted(Model):
    command_id: str
    status: str


class MessageSent(Model):
    command_id: str
    status: Literal["succeeded"]
    message_id: Optional[str] = None
    timestamp: Optional[Union[int, str]] = None
