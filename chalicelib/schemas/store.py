"""Models of the message store's read API (chalicelib/views/store.py)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field

from chalicelib.schemas.base import Model

MESSAGE_TYPES = ("text", "image", "video", "audio", "document", "sticker", "location", "contact", "poll",
                 "unknown")


class _Page(Model):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=50, ge=1, le=200)
    cursor: Optional[str] = Field(default=None, min_length=1, max_length=600,
                                  description="the `cursor` of the previous page (opaque)")


class ChatsQuery(_Page):
    is_group: Optional[bool] = Field(default=None, description="only groups (true) or only one-to-one chats (false)")
    unread: Optional[bool] = Field(default=None, description="only chats with (true) or without (false) unread messages")


class MessagesQuery(_Page):
    type: Optional[Literal["text", "image", "video", "audio", "document", "sticker", "location", "contact",
                           "poll", "unknown"]] = None
    before: Optional[datetime] = Field(default=None, description="only messages sent before (ISO 8601 or epoch s)")
    after: Optional[datetime] = Field(default=None, description="only messages sent after (ISO 8601 or epoch s)")


class ContactsQuery(_Page):
    search: Optional[str] = Field(default=None, min_length=1, max_length=100,
                                  description="part of a name (push, full or business name) or of the phone")


class ContactQuery(Model):
    model_config = ConfigDict(extra="ignore")
    refresh: bool = Field(default=False, description="fetch the profile through the runner even if cached")


class Person(Model):
    jid: str
    phone: Optional[str] = None
    lid: Optional[str] = None


class StoredMessage(Model):
    message_id: str
    chat: str = Field(description="the chat's JID")
    sender: Optional[Person] = None
    from_me: bool
    type: str
    text: Optional[str] = Field(default=None, description="text or caption (null: MESSAGE_STORE=metadata, revoked)")
    content: Optional[dict[str, Any]] = Field(default=None, description="the rest of the body by type")
    media: Optional[dict[str, Any]] = Field(default=None, description="media_key, mime_type, size, sha256, filename")
    reactions: Optional[dict[str, str]] = Field(default=None, description="author JID -> emoji")
    quoted_message_id: Optional[str] = None
    push_name: Optional[str] = None
    timestamp: Optional[str] = None
    recorded_at: Optional[str] = None
    status: str = Field(description="sent, delivered, read, played (ours) or received")
    status_at: Optional[str] = None
    edited: bool
    edited_at: Optional[str] = None
    revoked: bool = Field(description="deleted for everyone: the row stays, its content blanked")
    revoked_at: Optional[str] = None
    revoked_by: Optional[str] = None


class LastMessage(Model):
    message_id: str
    type: str
    from_me: bool
    text: Optional[str] = None
    timestamp: Optional[str] = None
    revoked: bool


class ChatOut(Model):
    jid: str
    name: Optional[str] = None
    is_group: bool
    unread_count: int
    last_read_at: Optional[str] = None
    archived: Optional[bool] = None
    pinned: Optional[bool] = None
    muted_until: Optional[str] = None
    last_activity_at: Optional[str] = None
    last_message: Optional[LastMessage] = None


class ChatList(Model):
    chats: list[ChatOut] = Field(description="newest activity first")
    cursor: Optional[str] = Field(default=None, description="the next page's cursor; null on the last page")


class MessageList(Model):
    chat: str
    messages: list[StoredMessage] = Field(description="newest first")
    cursor: Optional[str] = None


class ContactOut(Model):
    jid: str
    phone: Optional[str] = None
    lid: Optional[str] = None
    push_name: Optional[str] = None
    business_name: Optional[str] = None
    full_name: Optional[str] = None
    first_name: Optional[str] = None
    on_whatsapp: Optional[bool] = None
    about: Optional[str] = None
    picture_url: Optional[str] = None
    profile_at: Optional[str] = Field(default=None, description="when about/picture were fetched (cached)")
    updated_at: Optional[str] = None


class ContactList(Model):
    contacts: list[ContactOut]
    cursor: Optional[str] = None
