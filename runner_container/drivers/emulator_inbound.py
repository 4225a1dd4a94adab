"""What the emulator's "other phone" sends, built as the neonize protobuf events whatsmeow
hands to Python (`MessageEv`, `ReceiptEv`, `GroupInfoEv`), then translated by the same
`runner_container.translate` as the neonize driver's events: an edit, a revoke, a poll vote
or a group change reaches the runner through the code that reads WhatsApp's.

What is not WhatsApp's: the ids (`fake_message_id`), the timestamps (now), and the
devices (every JID is a phone's main device). A vote is encrypted with the poll's stored
secret as the voter's phone would (`poll_crypto.encrypt_vote`).
"""
from __future__ import annotations

import base64
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from neonize.events import GroupInfoEv, MessageEv, ReceiptEv
from neonize.proto.Neonize_pb2 import GroupAnnounce, GroupLocked, GroupName, GroupTopic, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from runner_container import poll_crypto
from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_rules import _bare, fake_message_id
from runner_container.translate_common import parse_jid_text

if TYPE_CHECKING:  # pragma: no cover
    import threading

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
KINDS = ("text", *MEDIA_TYPES, "reaction", "edit", "revoke", "poll", "poll_vote")
RECEIPT_KINDS = {"delivered": 1, "sender": 2, "retry": 3, "read": 4, "read_self": 5, "played": 6, "played_self": 7,
                 "server_error": 8, "inactive": 9, "peer_msg": 10}
PARTICIPANT_ACTIONS = {"added": "Join", "removed": "Leave", "promoted": "Promote", "demoted": "Demote"}
PollLookup = Callable[[str], Optional[dict[str, Any]]]


class InboundError(ValueError):
    """A control-API body the emulator cannot play (422)."""


def _jid(text: str) -> str:
    text = str(text)
    if "@" in text:
        return _bare(text)
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise InboundError(f"'{text[:40]}' is not a phone number or JID")
    return f"{digits}@s.whatsapp.net"


def _str(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InboundError(f"give {field} (a non-empty string)")
    return value


def _media(body: dict[str, Any], kind: str) -> tuple[Any, bytes]:
    try:
        blob = base64.b64decode(body.get("media_base64") or "", validate=True)
    except (ValueError, TypeError):
        raise InboundError("media_base64 is not valid base64") from None
    if not blob:
        raise InboundError(f"a {kind} message needs media_base64")
    fields: dict[str, Any] = {"mimetype": body.get("mime_type") or "", "fileLength": len(blob)}
    if kind in ("image", "video", "document") and body.get("caption"):
        fields["caption"] = body["caption"]
    if kind == "document":
        fields["fileName"] = body.get("filename") or ""
    if kind in ("image", "video", "audio") and body.get("view_once"):
        fields["viewOnce"] = True
    cls = {"image": wa.ImageMessage, "video": wa.VideoMessage, "audio": wa.AudioMessage,
           "document": wa.DocumentMessage, "sticker": wa.StickerMessage}[kind]
    return wa.Message(**{f"{kind}Message": cls(**fields)}), blob


@dataclass
class _Play:
    """What every inbound builder needs: the body, the chat, who sends, this account."""

    body: dict[str, Any]
    chat: str
    sender: str
    me: str
    group: bool
    polls: PollLookup


def _text(p: _Play) -> tuple[Any, str]:
    text = p.body.get("text")
    if not isinstance(text, str):
        raise InboundError("give from and text")
    if p.body.get("mentions") or p.body.get("quoted_message_id"):
        context = wa.ContextInfo(mentionedJID=[_jid(m) for m in p.body.get("mentions") or []],
                                 stanzaID=p.body.get("quoted_message_id") or None)
        return wa.Message(extendedTextMessage=wa.ExtendedTextMessage(text=text, contextInfo=context)), ""
    return wa.Message(conversation=text), ""


def _reaction(p: _Play) -> tuple[Any, str]:
    key = MessageKey(remoteJID=p.chat, fromMe=bool(p.body.get("target_from_me", True)), ID=_str(p.body, "message_id"))
    emoji = p.body.get("emoji", "")
    if not isinstance(emoji, str):
        raise InboundError("emoji must be a string (\"\" takes the reaction back)")
    return wa.Message(reactionMessage=wa.ReactionMessage(key=key, text=emoji,
                                                         senderTimestampMS=int(time.time() * 1000))), ""


def _edit(p: _Play) -> tuple[Any, str]:
    key = MessageKey(remoteJID=p.chat, fromMe=True, ID=_str(p.body, "message_id"))
    protocol = wa.ProtocolMessage(key=key, type=wa.ProtocolMessage.MESSAGE_EDIT,
                                  editedMessage=wa.Message(conversation=_str(p.body, "text")),
                                  timestampMS=int(time.time() * 1000))
    # as WhatsApp sends it: the edit inside an editedMessage wrapper (whatsmeow's "1" edit attribute)
    return wa.Message(editedMessage=wa.FutureProofMessage(message=wa.Message(protocolMessage=protocol))), "1"


def _revoke(p: _Play) -> tuple[Any, str]:
    by_admin = bool(p.body.get("by_admin"))
    if by_admin and not p.group:
        raise InboundError("by_admin needs a group chat")
    author = _jid(p.body["author"]) if p.body.get("author") else (p.me if by_admin else p.sender)
    key = MessageKey(remoteJID=p.chat, fromMe=author == p.sender, ID=_str(p.body, "message_id"),
                     participant=author if p.group else None)
    return wa.Message(protocolMessage=wa.ProtocolMessage(key=key, type=wa.ProtocolMessage.REVOKE)), \
        "8" if by_admin else "7"


def _poll(p: _Play) -> tuple[Any, str]:
    options = p.body.get("options")
    if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) and o for o in options):
        raise InboundError("a poll needs name and options (at least two strings)")
    poll = wa.PollCreationMessage(name=_str(p.body, "name"),
                                  options=[wa.PollCreationMessage.Option(optionName=o) for o in options],
                                  selectableOptionsCount=int(p.body.get("selectable_count", 1)))
    return wa.Message(pollCreationMessage=poll,
                      messageContextInfo=wa.MessageContextInfo(messageSecret=os.urandom(32))), ""


def _vote(p: _Play) -> tuple[Any, str]:
    body, chat, sender, me, group = p.body, p.chat, p.sender, p.me, p.group
    poll_id = _str(body, "poll_id")
    selected = body.get("options")
    if not isinstance(selected, list) or not all(isinstance(o, str) for o in selected):
        raise InboundError("a poll_vote needs poll_id and options (the option names chosen; [] withdraws)")
    poll = p.polls(poll_id)
    creator = poll["creator_jid"] if poll else me
    if poll is not None:
        payload, iv = poll_crypto.encrypt_vote(bytes(poll["secret"]), poll_id, creator, sender, selected)
    else:  # a poll this session never saw: the phone still sends a vote nobody here can open
        payload, iv = os.urandom(48), os.urandom(12)
    # the key as the voter's phone writes it: remoteJID is the chat from its side
    key = MessageKey(remoteJID=chat if group else creator, fromMe=creator == sender, ID=poll_id,
                     participant=creator if group else None)
    return wa.Message(pollUpdateMessage=wa.PollUpdateMessage(
        pollCreationMessageKey=key, vote=wa.PollEncValue(encPayload=payload, encIV=iv),
        senderTimestampMS=int(time.time() * 1000))), ""


_BUILDERS: dict[str, Callable[[_Play], tuple[Any, str]]] = {
    "text": _text, "reaction": _reaction, "edit": _edit, "revoke": _revoke, "poll": _poll, "poll_vote": _vote}


def _wrap(message: Any, body: dict[str, Any]) -> Any:
    if body.get("view_once"):
        message = wa.Message(viewOnceMessageV2=wa.FutureProofMessage(message=message))
    if body.get("ephemeral"):
        message = wa.Message(ephemeralMessage=wa.FutureProofMessage(message=message))
    return message


def message_event(body: dict[str, Any], me: str, polls: PollLookup) -> tuple[Any, Optional[bytes]]:
    """A MessageEv from another phone (`from`; in `chat` when a group), and the media bytes."""
    if not body.get("from"):
        raise InboundError("give from, and text or type + its fields")
    kind = body.get("type", "text")
    if kind not in KINDS:
        raise InboundError(f"type must be one of {', '.join(KINDS)}")
    chat_given = body.get("chat")
    if chat_given is not None and not re.fullmatch(r"[0-9-]+@g\.us|status@broadcast", str(chat_given)):
        raise InboundError("chat must be a group JID or status@broadcast")
    sender = _jid(body["from"])
    group = chat_given is not None and str(chat_given).endswith("@g.us")
    chat = str(chat_given) if chat_given is not None else sender
    blob: Optional[bytes] = None
    if kind in MEDIA_TYPES:
        message, blob = _media(body, kind)
        edit = ""
    else:
        message, edit = _BUILDERS[kind](_Play(body, chat, sender, me, group, polls))
    info = MessageInfo(ID=fake_message_id(), Timestamp=int(time.time()), Pushname=body.get("push_name") or "",
                       Edit=edit, Type="media" if blob else "text",
                       MessageSource=MessageSource(Chat=parse_jid_text(chat), Sender=parse_jid_text(sender),
                                                   IsFromMe=False, IsGroup=group))
    if body.get("business_name"):
        info.VerifiedName.Details.verifiedName = str(body["business_name"])
    return MessageEv(Info=info, Message=_wrap(message, body),
                     IsEphemeral=bool(body.get("ephemeral")), IsViewOnceV2=bool(body.get("view_once"))), blob


def receipt_event(chat: str, sender: str, message_ids: list[str], kind: str) -> Any:
    group = chat.endswith("@g.us")
    return ReceiptEv(MessageSource=MessageSource(Chat=parse_jid_text(chat), Sender=parse_jid_text(sender),
                                                 IsFromMe=kind.endswith("_self"), IsGroup=group),
                     MessageIDs=list(message_ids), Timestamp=int(time.time()), Type=RECEIPT_KINDS[kind])


def _participants(event: Any, body: dict[str, Any]) -> None:
    action, people = body["action"], body.get("participants")
    if action not in PARTICIPANT_ACTIONS or not isinstance(people, list) or not people:
        raise InboundError(f"action must be one of {', '.join(PARTICIPANT_ACTIONS)}, with participants")
    getattr(event, PARTICIPANT_ACTIONS[action]).extend(parse_jid_text(_jid(p)) for p in people)
    if action == "added" and body.get("reason"):
        event.JoinReason = str(body["reason"])


def _settings(event: Any, body: dict[str, Any]) -> None:
    if "subject" in body:
        event.Name.CopyFrom(GroupName(Name=str(body["subject"]), NameSetAt=int(time.time())))
    if "description" in body:
        description = body["description"]
        event.Topic.CopyFrom(GroupTopic(Topic=description or "", TopicDeleted=description is None))
    if "announce" in body:
        event.Announce.CopyFrom(GroupAnnounce(IsAnnounce=bool(body["announce"])))
    if "locked" in body:
        event.Locked.CopyFrom(GroupLocked(isLocked=bool(body["locked"])))


def group_change_event(body: dict[str, Any]) -> Any:
    """A GroupInfoEv: a participant change (`action`, `participants`) and/or new settings
    (`subject`, `description` (null removes), `announce`, `locked`), made by `by`."""
    chat = str(body.get("chat") or "")
    if not re.fullmatch(r"[0-9-]+@g\.us", chat):
        raise InboundError("give chat (a group JID)")
    if body.get("action") is None and not ({"subject", "description", "announce", "locked"} & body.keys()):
        raise InboundError("give action + participants, or subject, description, announce or locked")
    event = GroupInfoEv(JID=parse_jid_text(chat), Timestamp=int(time.time()))
    if body.get("by"):
        event.Sender.CopyFrom(parse_jid_text(_jid(body["by"])))
    if body.get("action") is not None:
        _participants(event, body)
    _settings(event, body)
    return event


class EmulatorOtherPhones:
    """Mixed into `EmulatorClient`: what other phones send this session, played through the
    neonize driver's own translation (which `EmulatorClient` provides the state for)."""

    _lock: "threading.RLock"
    state: str
    outbox: list[dict[str, Any]]
    polls: Any
    names: Any
    sink: Any

    if TYPE_CHECKING:  # provided by the other mixins of EmulatorClient
        def _me(self) -> str: ...
        def refuse_if_blocked(self, sender: str, chat: str | None) -> None: ...

    def play(self, event: Any, blob: bytes | None = None) -> None:
        """Hand a neonize protobuf event to the runner as the neonize driver does: through
        `translate` (polls and contact names included); media carries its `download`."""
        from neonize.events import MessageEv  # noqa: PLC0415

        from runner_container.translate import MEDIA_KINDS, translate  # noqa: PLC0415

        with self._lock:
            if self.state != "connected":
                raise DriverError("not_connected", f"the session is {self.state}, not connected")
        if isinstance(event, MessageEv):
            self.polls.remember_received(event)
        for kind, data in translate(event, None, self.polls.lookup, self.names):
            if kind == "event" and blob is not None and data["data"].get("type") in MEDIA_KINDS:
                data["data"]["download"] = lambda: blob
            self.sink(kind, data)

    def inbound(self, body: dict[str, Any]) -> str:
        """A message from another phone (runner_container/drivers/emulator_inbound.py)."""
        with self._lock:
            if self.state != "connected":
                raise DriverError("not_connected", f"the session is {self.state}, not connected")
        self.refuse_if_blocked(str(body.get("from") or ""), body.get("chat"))  # WhatsApp delivers nothing from a blocked contact
        event, blob = message_event(body, self._me(), self.polls.lookup)
        self.play(event, blob)
        return str(event.Info.ID)

    def receipt(self, message_ids: list[str], kind: str, chat: str | None = None) -> None:
        """Another phone acknowledges messages this session sent to it (one chat), or this
        account reads/plays a received message on another device (`read_self`, `played_self`, in `chat`)."""
        with self._lock:
            sent = {m["message_id"]: m for m in self.outbox}
        if kind.endswith("_self"):
            if not chat or not message_ids:
                raise DriverError("chat_required", f"a {kind} receipt names the chat of the messages read")
            self.play(receipt_event(chat, self._me(), message_ids, kind))
            return
        unknown = [m for m in message_ids if m not in sent]
        if unknown or not message_ids:
            raise DriverError("unknown_message", f"this session did not send {unknown or 'any message'}")
        to = {sent[m]["to"] for m in message_ids}
        if len(to) != 1:
            raise DriverError("several_chats", "a receipt acknowledges messages of one chat")
        chat = to.pop()
        self.play(receipt_event(chat, chat, message_ids, kind))
