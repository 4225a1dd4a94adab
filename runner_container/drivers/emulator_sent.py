"""What the emulator records of a message this session sends, beyond the payload: the
text and mentions exactly as the neonize builder writes them (`wa_messages`), the
view-once flag, and a poll's secret, kept as the neonize driver keeps it so that votes
played later (`emulator_inbound`) are read by the same code."""
from __future__ import annotations

import os
from typing import Any, Optional

from runner_container.poll_crypto import non_ad


def sent_fields(payload: dict[str, Any]) -> dict[str, Any]:
    from runner_container.wa_messages import mention_jids, mentioned_text  # noqa: PLC0415

    kind = payload.get("type", "text")
    out: dict[str, Any] = {"mentioned_jids": mention_jids(payload)}
    if kind == "text":
        out["text"] = mentioned_text(payload.get("text"), payload)
    elif payload.get("caption") or payload.get("mentions"):
        out["caption"] = mentioned_text(payload.get("caption"), payload)
    if kind in ("image", "video"):
        out["view_once"] = bool(payload.get("view_once"))
    return out


def sent_poll(payload: dict[str, Any], message_id: str, own_jid: Optional[str]) -> Optional[dict[str, Any]]:
    """The poll record of a sent poll (a fresh 32-byte secret, as whatsmeow's BuildPollCreation)."""
    if payload.get("type") != "poll":
        return None
    return {"poll_id": message_id, "chat_jid": str(payload.get("to", "")), "creator_jid": non_ad(own_jid or ""),
            "creator_alt": None, "secret": os.urandom(32), "name": payload.get("question") or "",
            "options": list(payload.get("options") or [])}
