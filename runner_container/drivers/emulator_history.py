"""The emulator's side of the message store: history on scan and contact profiles.

`POST /emulator/sessions/{id}/scan` may carry `history`: the chats the "phone" already has,
which the emulator sends the way WhatsApp sends them to a new device: as a real neonize
`HistorySyncEv` protobuf, built here and translated by the same code as the neonize driver's
(`runner_container/translate.py` -> `runner_container/history.py`), so a pipeline test goes
through the real translation. Body:

    {"history": {"sync_type": "initial_bootstrap",            # or recent, full, push_name, on_demand
                 "chats": [{"jid": "5511...@s.whatsapp.net" | "phone": "5511...", "name": "...",
                            "unread_count": 2, "archived": false, "pinned": false,
                            "messages": [{"id": "...", "from_me": false, "text": "...",
                                          "timestamp": 1700000000, "sender": "<participant JID in a group>",
                                          "status": "read"}]}],
                 "pushnames": [{"phone": "5511...", "push_name": "Ana"}]}}

`profile(jid)` is the emulator's rule for the contact detail: on WhatsApp unless the number
ends in 0 (emulator_rules.on_whatsapp), a fixed about text, no picture.
"""
from __future__ import annotations

import time
from typing import Any

from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_rules import fake_message_id, on_whatsapp

SYNC_TYPES = {"initial_bootstrap": 0, "full": 2, "recent": 3, "push_name": 4, "on_demand": 6}
STATUSES = {"pending": 1, "sent": 2, "delivered": 3, "read": 4, "played": 5}
ABOUT = "Hey there! I am using WhatsApp."


def profile(jid: str) -> dict[str, Any]:
    user, _, server = jid.partition("@")
    phone = user if server == "s.whatsapp.net" else None
    on = bool(phone) and on_whatsapp(phone or "")
    return {"jid": jid, "phone": phone, "on_whatsapp": on, "about": ABOUT if on else None, "picture_url": None,
            "business_name": None}


def _jid(item: dict[str, Any]) -> str:
    jid = item.get("jid") or (f"{item['phone']}@s.whatsapp.net" if item.get("phone") else None)
    if not isinstance(jid, str) or "@" not in jid:
        raise DriverError("invalid_history", "each chat needs jid or phone")
    return jid


def history_event(spec: dict[str, Any]) -> Any:
    """The `HistorySyncEv` WhatsApp would send for `spec` (the body's `history`)."""
    from neonize.events import HistorySyncEv  # noqa: PLC0415 - neonize lives in the runner only
    from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import HistorySync, Pushname  # noqa: PLC0415

    sync_type = str(spec.get("sync_type") or "initial_bootstrap")
    if sync_type not in SYNC_TYPES:
        raise DriverError("invalid_history", f"sync_type must be one of {', '.join(SYNC_TYPES)}")
    now = int(time.time())
    conversations = [_conversation(chat, now) for chat in spec.get("chats") or []]
    pushnames = [Pushname(ID=_jid(p), pushname=str(p.get("push_name") or "")) for p in spec.get("pushnames") or []]
    return HistorySyncEv(Data=HistorySync(syncType=SYNC_TYPES[sync_type], conversations=conversations,
                                          pushnames=pushnames, chunkOrder=1, progress=100))


def _conversation(chat: dict[str, Any], now: int) -> Any:
    from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import Conversation  # noqa: PLC0415

    jid = _jid(chat)
    messages = [_history_message(jid, index, item, now) for index, item in enumerate(chat.get("messages") or [])]
    return Conversation(ID=jid, name=chat.get("name"), unreadCount=int(chat.get("unread_count") or 0),
                        archived=bool(chat.get("archived")), pinned=1 if chat.get("pinned") else 0,
                        conversationTimestamp=now, messages=messages)


def _history_message(jid: str, index: int, item: dict[str, Any], now: int) -> Any:
    from neonize.proto.waCommon.WACommon_pb2 import MessageKey  # noqa: PLC0415
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message  # noqa: PLC0415
    from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import HistorySyncMsg  # noqa: PLC0415
    from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo  # noqa: PLC0415

    key = MessageKey(remoteJID=jid, fromMe=bool(item.get("from_me")), ID=str(item.get("id") or fake_message_id()),
                     participant=str(item.get("sender") or "") or None)
    info = WebMessageInfo(key=key, message=Message(conversation=str(item.get("text") or "")),
                          messageTimestamp=int(item.get("timestamp") or now - index),
                          status=STATUSES.get(str(item.get("status") or ""), 0) or None,
                          pushName=item.get("push_name"))
    return HistorySyncMsg(message=info, msgOrderID=index + 1)


def deliver(client: Any, spec: Any) -> int:
    """Send the history to the runner as the neonize driver would; the number of chats."""
    from runner_container.translate import translate  # noqa: PLC0415

    if not isinstance(spec, dict):
        raise DriverError("invalid_history", "history must be an object with chats")
    try:
        event = history_event(spec)
    except (TypeError, ValueError) as exc:
        raise DriverError("invalid_history", f"history: {exc}") from exc
    for kind, data in translate(event):
        client.sink(kind, data)
    return len(event.Data.conversations)
