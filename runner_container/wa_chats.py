"""neonize <-> zemeow for chats, contacts and groups: argument building (JIDs, enums) and
the translation of whatsmeow's answers (GroupInfo, IsOnWhatsAppResponse, GroupParticipant
protobufs) into the JSON shapes of the API. Also the error vocabulary both drivers share.

Importing this module does not import neonize (the emulator uses the vocabulary); the
functions that need neonize import it when called.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from runner_container.drivers.base import DriverError

USER_SERVER = "s.whatsapp.net"

# whatsmeow reports each participant change with an HTTP-like code (0 = done).
_PARTICIPANT_ERRORS = {400: "bad_request", 401: "not_authorized", 403: "not_allowed", 404: "not_found",
                       406: "not_acceptable", 408: "recently_left", 409: "conflict", 419: "group_full",
                       500: "server_error"}
_BY_ACTION = {("add", 404): "not_on_whatsapp", ("add", 409): "already_member", ("remove", 404): "not_member",
              ("promote", 404): "not_member", ("demote", 404): "not_member"}


def participant_error(code: int, action: str, *, add_request: bool = False) -> str | None:
    """whatsmeow's per-participant code -> our snake_case reason (None when it worked)."""
    if not code:
        return None
    if code == 403 and add_request:
        return "invite_required"  # their privacy settings: WhatsApp offers an invite instead
    return _BY_ACTION.get((action, code)) or _PARTICIPANT_ERRORS.get(code) or f"error_{code}"


# whatsmeow's error texts (and IQ error conditions) -> readable codes, first match wins
_ERROR_CODES = (
    ("client is nil", "not_connected"),
    ("websocket not connected", "not_connected"),
    ("not connected", "not_connected"),
    ("doesn't contain a device jid", "not_logged_in"),
    ("not logged in", "not_logged_in"),
    ("group not found", "group_not_found"),
    ("item-not-found", "group_not_found"),
    ("not participating", "group_not_found"),
    ("not-authorized", "not_admin"),
    ("forbidden", "not_admin"),
    ("pushname", "push_name_missing"),
    ("rate-overlimit", "rate_limited_by_whatsapp"),
    ("timed out", "whatsapp_timeout"),
    ("context deadline exceeded", "whatsapp_timeout"),
)


def error_code(text: str, default: str) -> str:
    lowered = text.lower()
    for needle, code in _ERROR_CODES:
        if needle in lowered:
            return code
    return default


def driver_error(exc: BaseException, default: str) -> DriverError:
    text = " ".join(str(exc).split())[:300] or "unknown error"
    return DriverError(error_code(text, default), text)


def jid_text(jid: Any) -> str | None:
    if jid is None or (not getattr(jid, "User", "") and not getattr(jid, "Server", "")):
        return None
    user = jid.User
    if getattr(jid, "Device", 0):
        user = f"{user}:{jid.Device}"
    return f"{user}@{jid.Server}" if user else jid.Server


def _phone(jid: Any) -> str | None:
    if jid is not None and getattr(jid, "Server", "") == USER_SERVER and jid.User:
        return jid.User
    return None


def _has(message: Any, field: str) -> bool:
    try:
        return message.HasField(field)
    except ValueError:
        return False


# -- translation of answers -------------------------------------------------------------
def participant_json(p: Any) -> dict[str, Any]:
    jid = jid_text(p.JID) or jid_text(p.LID) or ""
    phone = (_phone(p.PhoneNumber) if _has(p, "PhoneNumber") else None) or _phone(p.JID)
    return {"jid": jid, "phone": phone, "is_admin": bool(p.IsAdmin or p.IsSuperAdmin),
            "is_super_admin": bool(p.IsSuperAdmin)}


def group_json(info: Any) -> dict[str, Any]:
    """A neonize `GroupInfo` -> {jid, name, topic, owner, participants_count, created_at,
    is_announce, is_locked, participants}: the members, never a participant WhatsApp
    answered with an error."""
    created = None
    if info.GroupCreated:
        created = datetime.fromtimestamp(int(info.GroupCreated), timezone.utc).isoformat()
    # whatsmeow lists a participant WhatsApp did not add (not on WhatsApp, privacy: an
    # invite instead) with its `Error` code: such a one is not a member (CreateGroup's answer)
    participants = [participant_json(p) for p in info.Participants if not int(p.Error)]
    return {
        "jid": jid_text(info.JID) or "",
        "name": _field(info, "GroupName", "Name", ""),
        "topic": _field(info, "GroupTopic", "Topic", None) or None,
        "owner": _owner(info),
        "participants_count": len(participants),
        "created_at": created,
        "is_announce": bool(_field(info, "GroupAnnounce", "IsAnnounce", False)),
        "is_locked": bool(_field(info, "GroupLocked", "isLocked", False)),
        "participants": participants,
    }


def _field(message: Any, part: str, name: str, default: Any) -> Any:
    """`message.part.name` when the message has that part, else `default`."""
    return getattr(getattr(message, part), name) if _has(message, part) else default


def _owner(info: Any) -> str | None:
    owner = None
    if _has(info, "OwnerPN") and info.OwnerPN.User:
        owner = jid_text(info.OwnerPN)  # the owner's phone JID when WhatsApp gives a LID as OwnerJID
    return owner or (jid_text(info.OwnerJID) if _has(info, "OwnerJID") else None)


def contacts_json(phones: list[str], answers: Iterable[Any]) -> list[dict[str, Any]]:
    """neonize `IsOnWhatsAppResponse`s (Query = what we asked, '+<digits>') -> one item per
    phone we asked about, in order; a phone WhatsApp did not answer for is not on it."""
    by_phone: dict[str, Any] = {}
    for answer in answers:
        digits = "".join(ch for ch in answer.Query if ch.isdigit())
        if not digits and _has(answer, "JID"):
            digits = answer.JID.User
        by_phone[digits] = answer
    items = []
    for phone in phones:
        answer = by_phone.get(phone)
        on = bool(answer is not None and answer.IsIn)
        items.append({"phone": phone, "on_whatsapp": on, "jid": jid_text(answer.JID) if on else None,
                      "verified_name": _verified_name(answer) if on else None})
    return items


def _verified_name(answer: Any) -> str | None:
    if not _has(answer, "VerifiedName"):
        return None
    details = answer.VerifiedName.Details if _has(answer.VerifiedName, "Details") else None
    return (getattr(details, "verifiedName", "") or None) if details is not None else None


def participant_results(action: str, requested: list[str], answered: Iterable[Any]) -> list[dict[str, Any]]:
    """whatsmeow's answer to UpdateGroupParticipants -> one result per requested JID, in order.
    A participant WhatsApp said nothing about is reported as `no_answer`, never as done."""
    by_jid: dict[str, Any] = {}
    for p in answered:
        for jid in (p.JID, p.PhoneNumber if _has(p, "PhoneNumber") else None, p.LID if _has(p, "LID") else None):
            text = jid_text(jid)
            if text:
                by_jid.setdefault(_bare(text), p)
    results = []
    for jid in requested:
        p = by_jid.get(_bare(jid))
        if p is None:
            results.append({"jid": jid, "phone": _phone_of(jid), "ok": False, "error": "no_answer"})
            continue
        add_request = _has(p, "AddRequest") and bool(p.AddRequest.Code)
        error = participant_error(int(p.Error), action, add_request=add_request)
        results.append({"jid": jid, "phone": _phone_of(jid), "ok": error is None, "error": error})
    return results


def _bare(jid: str) -> str:
    """'5511...:12@s.whatsapp.net' -> '5511...@s.whatsapp.net' (no device)."""
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server}"


def _phone_of(jid: str) -> str | None:
    user, _, server = jid.partition("@")
    return user.split(":")[0] if server == USER_SERVER else None


# -- argument building (neonize enums) --------------------------------------------------
def presence_args(state: str) -> tuple[str, tuple[Any, ...]]:
    """Our presence state -> which neonize call and its enum arguments:
    ('account', (Presence,)) or ('chat', (ChatPresence, ChatPresenceMedia))."""
    from neonize.utils.enum import ChatPresence, ChatPresenceMedia, Presence

    if state == "available":
        return "account", (Presence.AVAILABLE,)
    if state == "unavailable":
        return "account", (Presence.UNAVAILABLE,)
    if state == "composing":
        return "chat", (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
    if state == "recording":  # whatsmeow: composing with media=audio is "recording audio"
        return "chat", (ChatPresence.CHAT_PRESENCE_COMPOSING, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO)
    if state == "paused":
        return "chat", (ChatPresence.CHAT_PRESENCE_PAUSED, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
    raise DriverError("bad_presence", f"unknown presence state {state!r}")


def participant_change(action: str) -> Any:
    from neonize.utils.enum import ParticipantChange

    try:
        return ParticipantChange(action)
    except ValueError:
        raise DriverError("bad_action", f"unknown participant action {action!r}") from None


def profile_json(jid: str, users: Iterable[Any], picture_url: str | None) -> dict[str, Any]:
    """neonize `GetUserInfoSingleReturnFunction`s for one JID -> the contact detail's profile.
    WhatsApp answers only for numbers that have an account: no answer is not on WhatsApp."""
    user = jid.split("@", 1)[0]
    info = next((u.UserInfo for u in users if _has(u, "JID") and u.JID.User == user), None)
    business = None
    if info is not None and _has(info, "VerifiedName"):
        business = info.VerifiedName.Details.verifiedName or None
    return {"jid": jid, "phone": user if jid.endswith("@s.whatsapp.net") else None,
            "on_whatsapp": info is not None, "about": (info.Status or None) if info is not None else None,
            "picture_url": picture_url, "business_name": business}
