"""What every translation module shares: JIDs rendered for the contract, and timestamps.

JIDs are rendered as `{"jid", "phone", "lid"}`: a LID (`…@lid`) is turned into the phone
number through `resolve_pn` (neonize's `get_pn_from_lid`) or the message's alternate
address when whatsmeow gives one.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, Optional

from neonize.proto.Neonize_pb2 import JID

Resolver = Optional[Callable[[Any], Optional[str]]]
Translated = list[tuple[str, dict[str, Any]]]


def jid_string(jid: Any) -> str | None:
    if jid is None or not getattr(jid, "User", "") and not getattr(jid, "Server", ""):
        return None
    user = jid.User
    if getattr(jid, "Device", 0):
        user = f"{user}:{jid.Device}"
    return f"{user}@{jid.Server}" if user else jid.Server


def parse_jid_text(text: str) -> Any:
    """A neonize JID protobuf from `user[:device]@server` (a key's remoteJID, participant...)."""
    user_part, _, server = text.partition("@")
    user, _, device = user_part.partition(":")
    return JID(User=user, Device=int(device or 0) if device.isdigit() else 0, Server=server or "s.whatsapp.net",
               RawAgent=0, Integrator=0, IsEmpty=False)


def render_jid(jid: Any, resolve_pn: Resolver = None, alt: Any = None) -> dict[str, Any] | None:
    text = jid_string(jid)
    if text is None:
        return None
    out: dict[str, Any] = {"jid": text, "phone": None}
    if jid.Server == "s.whatsapp.net":
        out["phone"] = jid.User
    elif jid.Server == "lid":
        out["lid"] = text
        if alt is not None and getattr(alt, "Server", "") == "s.whatsapp.net" and alt.User:
            out["phone"] = alt.User
        elif resolve_pn is not None:
            try:
                out["phone"] = resolve_pn(jid)
            except Exception:  # noqa: BLE001 - unknown mapping: the LID stays as it is
                out["phone"] = None
    return out


def render_jid_text(text: str | None, resolve_pn: Resolver = None) -> dict[str, Any] | None:
    return render_jid(parse_jid_text(text), resolve_pn) if text else None


def ts(seconds: int | float) -> str | None:
    if not seconds:
        return None
    if seconds > 10_000_000_000:  # milliseconds
        seconds = seconds / 1000
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")
