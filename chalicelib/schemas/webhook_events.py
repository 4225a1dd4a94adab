"""The `data` of the WhatsApp events a webhook receives, for the OpenAPI document's
`webhooks` section (one entry per event, the envelope with its `data` model). The
runner builds these dicts (runner_container/translate*.py); README "Events and their
data" says the same in prose. Models allow extra fields: events grow, receivers ignore
what they do not know."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import ConfigDict, Field

from chalicelib.schemas.base import Model


class Open(Model):
    model_config = ConfigDict(extra="allow")


class Person(Open):
    jid: str = Field(description="user, group or LID JID")
    phone: Optional[str] = Field(description="digits; null when only a LID is known")
    lid: Optional[str] = Field(default=None, description="the LID JID, when WhatsApp addressed it by LID")


class MessageData(Open):
    message_id: str
    chat: Person
    from_: Person = Field(alias="from")
    is_group: bool
    from_me: bool
    push_name: Optional[str] = None
    timestamp: Optional[str] = None
    quoted_message_id: Optional[str] = None
    ephemeral: bool = Field(default=False, description="a disappearing message (unwrapped)")
    view_once: bool = Field(default=False, description="a view-once message (unwrapped)")
    type: str = Field(description="text, image, video, audio, document, sticker, location, contact, reaction, "
                                  "poll, unknown; the type's fields beside it")
    text: Optional[str] = None
    caption: Optional[str] = None
    mentions: Optional[list[str]] = Field(default=None, description="JIDs mentioned (text, captions)")
    emoji: Optional[str] = Field(default=None, description="reaction: \"\" when taken back")
    removed: Optional[bool] = Field(default=None, description="reaction: the sender took it back")
    name: Optional[str] = Field(default=None, description="poll: the question")
    options: Optional[list[str]] = Field(default=None, description="poll: the option names")
    selectable_count: Optional[int] = Field(default=None, description="poll: 0 = any number")


class MessageSent(Open):
    """Sent from another device of this account: as `message.received`. Sent through the
    API: the request's fields (`to`, `type`, ...) with `message_id` and `timestamp` (unix
    seconds), and `target_message_id` for an edit, revoke or reaction."""

    message_id: str
    type: str
    to: Optional[str] = Field(default=None, description="API sends: the recipient JID")
    chat: Optional[Person] = None
    from_: Optional[Person] = Field(default=None, alias="from")
    from_me: Optional[bool] = None
    timestamp: Optional[int | str] = None
    target_message_id: Optional[str] = None


class MessageEdited(Open):
    message_id: str = Field(description="the message that was edited")
    chat: Person
    sender: Person
    is_group: bool
    from_me: bool
    type: str = Field(description="text, or the media type whose caption changed")
    text: Optional[str] = None
    caption: Optional[str] = None
    edited_at: Optional[str] = None
    edit_id: Optional[str] = Field(description="the id of the edit message itself")


class MessageRevoked(Open):
    message_id: str = Field(description="the deleted message")
    chat: Person
    sender: Optional[Person] = Field(description="the deleted message's author, when known")
    revoked_by: Person
    by_admin: bool = Field(description="a group admin deleted someone else's message")
    is_group: bool
    from_me: bool
    timestamp: Optional[str] = None


class MessageReceipt(Open):
    message_ids: list[str]
    type: str = Field(description="delivered, read, played, read_self, played_self, sender, retry, server_error, "
                                  "inactive, peer_msg, history_sync")
    chat: Person
    sender: Person
    is_group: bool
    timestamp: Optional[str] = None


class PollVote(Open):
    poll_id: str
    message_id: str
    chat: Person
    voter: Person
    is_group: bool
    from_me: bool
    options: Optional[list[str]] = Field(description="the option names now selected ([] = withdrawn); null "
                                                     "with `error`")
    error: Optional[Literal["poll_unknown", "decrypt_failed"]] = None
    timestamp: Optional[str] = None


class GroupParticipants(Open):
    group: Person
    action: Literal["added", "removed", "promoted", "demoted"]
    by: Optional[Person]
    participants: list[Person]
    reason: Optional[str] = None
    timestamp: Optional[str] = None


class GroupChanges(Open):
    subject: Optional[str] = None
    description: Optional[str] = Field(default=None, description="null: removed")
    announce: Optional[bool] = Field(default=None, description="only admins send messages")
    locked: Optional[bool] = Field(default=None, description="only admins edit the group info")
    ephemeral_seconds: Optional[int] = Field(default=None, description="0: disappearing messages off")
    deleted: Optional[bool] = None
    invite_link: Optional[str] = None
    participants_count: Optional[int] = Field(default=None, description="`joined` only")


class GroupUpdate(Open):
    group: Person
    kind: Literal["changed", "joined"]
    by: Optional[Person]
    timestamp: Optional[str] = None
    changes: GroupChanges = Field(description="only what changed, with the new values")


class ContactUpdated(Open):
    contact: Person
    changed: list[Literal["push_name", "business_name"]]
    push_name: Optional[str] = None
    previous_push_name: Optional[str] = None
    business_name: Optional[str] = None
    previous_business_name: Optional[str] = None
    timestamp: Optional[str] = None


EVENT_DATA: dict[str, tuple[type[Model], str]] = {
    "message.received": (MessageData, "a message from someone else"),
    "message.sent": (MessageSent, "a message this account sent (from another device, or through the API: then "
                                  "the request's fields with message_id and timestamp)"),
    "message.edited": (MessageEdited, "a message was edited"),
    "message.revoked": (MessageRevoked, "a message was deleted for everyone"),
    "message.receipt": (MessageReceipt, "messages were delivered, read or played"),
    "poll.vote": (PollVote, "a vote on a poll, with the option names"),
    "group.participants": (GroupParticipants, "participants added, removed, promoted or demoted"),
    "group.update": (GroupUpdate, "a group's subject, description or settings changed, or this account joined"),
    "contact.updated": (ContactUpdated, "a contact's push name or business name changed"),
}


def webhooks(ref: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 `webhooks` object: each event POSTed as the signed envelope."""
    out: dict[str, Any] = {}
    for name, (model, summary) in EVENT_DATA.items():
        envelope = {"type": "object", "required": ["id", "session_id", "event", "timestamp", "data", "metadata"],
                    "properties": {"id": {"type": "string", "description": "the webhook-id header too"},
                                   "session_id": {"type": "string"}, "event": {"const": name},
                                   "timestamp": {"type": "string", "format": "date-time"}, "data": ref(model),
                                   "metadata": {"type": "object", "description": "`sequence`, `session_uid`"}}}
        out[name] = {"post": {"summary": summary, "description": "Signed with the Standard Webhooks headers "
                                                                 "(webhook-id, webhook-timestamp, webhook-signature)",
                              "requestBody": {"content": {"application/json": {"schema": envelope}}},
                              "responses": {"2XX": {"description": "received; anything else is retried"}}}}
    return out
