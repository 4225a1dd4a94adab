"""History sync: what WhatsApp sends a newly paired device (neonize `HistorySyncEv`).

WhatsApp pushes the account's recent chats to a new companion device in chunks
(`waHistorySync.HistorySync`: `syncType` INITIAL_BOOTSTRAP, RECENT, PUSH_NAME, then FULL
chunks when the phone shares the whole history, ON_DEMAND later). `translate_history` turns
one chunk into plain values (chats with their messages, push names) in the shapes the
message events use, so the store writes them the same way (chalicelib/messaging/store_records.py
`history_ops`). `bounded(history, HISTORY_SYNC)` keeps what the deployment asked for:

- `off`: nothing is stored, no `history.synced` event;
- `recent` (default): the bootstrap/recent/push-name chunks, the newest
  RECENT_MESSAGES_PER_CHAT messages of each chat (FULL and ON_DEMAND chunks are dropped);
- `full`: every chunk, every message.

Pure functions over the protobufs: tests feed real neonize objects.
"""
from __future__ import annotations

from typing import Any

from runner_container.translate_common import ts as _ts
from runner_container.translate_messages import decode_message, quoted_message_id

SYNC_TYPES = {0: "initial_bootstrap", 1: "initial_status_v3", 2: "full", 3: "recent", 4: "push_name",
              5: "non_blocking_data", 6: "on_demand"}
RECENT_TYPES = ("initial_bootstrap", "recent", "push_name")
RECENT_MESSAGES_PER_CHAT = 100
# WebMessageInfo.status -> the store's status of a message we sent
MESSAGE_STATUS = {1: "pending", 2: "sent", 3: "delivered", 4: "read", 5: "played"}


def render(jid: str) -> dict[str, Any] | None:
    """A JID string of a history blob as `{jid, phone, lid}` (devices dropped)."""
    if not jid or "@" not in jid:
        return None
    user, _, server = jid.partition("@")
    user = user.split(":")[0]
    bare = f"{user}@{server}"
    out: dict[str, Any] = {"jid": bare, "phone": user if server == "s.whatsapp.net" else None}
    if server == "lid":
        out["lid"] = bare
    return out


def history_message(info: Any, chat: str) -> dict[str, Any] | None:
    """One `WebMessageInfo` of a conversation as a message event's data (None: a system stub)."""
    if not info.HasField("message") or not info.key.ID:
        return None
    from_me = bool(info.key.fromMe)
    group = chat.endswith("@g.us")
    sender = info.key.participant or info.participant if group else (None if from_me else chat)
    data: dict[str, Any] = {
        "message_id": info.key.ID, "chat": render(chat), "from": render(sender) if sender else None,
        "is_group": group, "from_me": from_me, "push_name": info.pushName or None,
        "timestamp": _ts(info.messageTimestamp), "quoted_message_id": quoted_message_id(info.message),
        **decode_message(info.message),
    }
    if from_me and info.status in MESSAGE_STATUS:
        data["status"] = MESSAGE_STATUS[info.status]
    return data


def translate_history(event: Any) -> dict[str, Any]:
    """A `HistorySyncEv` -> `{sync_type, chunk_order, progress, conversations, contacts}`."""
    blob = event.Data
    conversations = [c for c in (_conversation(conversation) for conversation in blob.conversations) if c]
    contacts = []
    for pushname in blob.pushnames:
        who = render(pushname.ID)
        if who and pushname.pushname:
            contacts.append({**who, "push_name": pushname.pushname})
    return {"sync_type": SYNC_TYPES.get(blob.syncType, "unknown"), "chunk_order": int(blob.chunkOrder),
            "progress": int(blob.progress), "conversations": conversations, "contacts": contacts}


def _conversation(conversation: Any) -> dict[str, Any] | None:
    chat = render(conversation.ID)
    if chat is None:
        return None
    messages = [m for m in (history_message(item.message, chat["jid"]) for item in conversation.messages) if m]
    return {"jid": chat["jid"], "name": conversation.name or conversation.displayName or None,
            "unread_count": int(conversation.unreadCount), "archived": bool(conversation.archived),
            "pinned": bool(conversation.pinned), "muted_until": int(conversation.muteEndTime) or None,
            "timestamp": int(conversation.conversationTimestamp or conversation.lastMsgTimestamp) or None,
            "messages": messages}


def bounded(history: dict[str, Any], mode: str) -> dict[str, Any] | None:
    """What HISTORY_SYNC keeps of a chunk (None: nothing)."""
    if mode == "off" or (mode == "recent" and history.get("sync_type") not in RECENT_TYPES):
        return None
    if mode == "full":
        return history
    kept = []
    for conversation in history.get("conversations") or []:
        messages = sorted(conversation.get("messages") or [], key=lambda m: m.get("timestamp") or "", reverse=True)
        kept.append({**conversation, "messages": messages[:RECENT_MESSAGES_PER_CHAT]})
    return {**history, "conversations": kept}


def synced_event(history: dict[str, Any]) -> dict[str, Any]:
    """The `history.synced` event's data before the store counts what it wrote."""
    return {"sync_type": history.get("sync_type"), "chunk_order": history.get("chunk_order"),
            "progress": history.get("progress"), "chats": 0, "messages": 0, "contacts": 0}
