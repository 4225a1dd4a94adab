"""neonize <-> zemeow for group administration, the account's profile and privacy, and the
blocklist: argument building (invite codes, privacy enums, pictures) and the translation of
whatsmeow's answers (PrivacySettings, Blocklist, GroupParticipantRequest) into the API's
JSON. Both drivers use the shared parts (picture checks, privacy vocabulary, error codes),
so the emulator refuses what neonize refuses, with the same codes.

Importing this module does not import neonize; the functions that need it import it when
called.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from runner_container import wa_chats
from runner_container.drivers.base import DriverError

INVITE_PREFIX = "https://chat.whatsapp.com/"
MAX_PICTURE_BYTES = 700 * 1024  # as the API's inline media limit; WhatsApp resizes pictures to 640x640
JPEG_MAGIC = b"\xff\xd8\xff"

# our privacy names -> whatsmeow's setting names (neonize `PrivacySettingType` values)
PRIVACY_NAMES = {"last_seen": "last", "profile_photo": "profile", "about": "status", "groups_add": "groupadd",
                 "read_receipts": "readreceipts"}
# neonize's PrivacySettings protobuf field per our name
PRIVACY_FIELDS = {"last_seen": "LastSeen", "profile_photo": "Profile", "about": "Status", "groups_add": "GroupAdd",
                  "read_receipts": "ReadReceipts"}
# what WhatsApp accepts per setting (whatsmeow: PrivacySetting values)
PRIVACY_VALUES = {"last_seen": ("all", "contacts", "contacts_blacklist", "none"),
                  "profile_photo": ("all", "contacts", "contacts_blacklist", "none"),
                  "about": ("all", "contacts", "contacts_blacklist", "none"),
                  "groups_add": ("all", "contacts", "contacts_blacklist"),
                  "read_receipts": ("all", "none")}
# neonize's PrivacySettings.PrivacySetting enum names -> our values
_PROTO_VALUES = {"ALL": "all", "CONTACTS": "contacts", "CONTACT_BLACKLIST": "contacts_blacklist", "NONE": "none",
                 "MATCH_LAST_SEEN": "match_last_seen", "KNOWN": "known", "UNDEFINED": None}

# whatsmeow's error texts for these calls -> codes (first match wins; then wa_chats' table)
_ERROR_CODES = (
    ("invite link is not valid", "invite_invalid"),
    ("invite link has been revoked", "invite_revoked"),
    ("not participating in that group", "group_not_found"),
    ("that group does not exist", "group_not_found"),
    ("unauthorized to get group invite link", "not_admin"),
    ("not a valid image", "picture_invalid"),
    ("client not found", "not_connected"),  # neonize's own, when its Go side holds no client
)


def driver_error(exc: BaseException, default: str) -> DriverError:
    text = " ".join(str(exc).split())[:300] or "unknown error"
    lowered = text.lower()
    for needle, code in _ERROR_CODES:
        if needle in lowered:
            return DriverError(code, text)
    return DriverError(wa_chats.error_code(text, default), text)


# -- invites ----------------------------------------------------------------------------
def invite_link(code: str) -> str:
    return code if code.startswith(INVITE_PREFIX) else f"{INVITE_PREFIX}{code}"


def invite_code(link: str) -> str:
    """whatsmeow answers GetGroupInviteLink with the whole link; the API shows both."""
    return link[len(INVITE_PREFIX):] if link.startswith(INVITE_PREFIX) else link


def new_invite_code() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(22))


# -- pictures ---------------------------------------------------------------------------
def picture_bytes(picture: dict[str, Any], fetch_key: Optional[Callable[[str, int], bytes]]) -> bytes:
    """A picture from the command's `{media_base64}` or `{media_key}` (never a URL: neonize's
    own set_*_photo would fetch a str with an unguarded `requests.get`), checked as WhatsApp
    wants it: a JPEG within MAX_PICTURE_BYTES."""
    import base64  # noqa: PLC0415

    from runner_container.wa_messages import MessageBuildError  # noqa: PLC0415

    try:
        if picture.get("media_base64"):
            data = base64.b64decode(picture["media_base64"])
        elif picture.get("media_key"):
            if fetch_key is None:
                raise DriverError("media_storage_not_configured", "media_key needs MEDIA_BUCKET on the runner")
            data = fetch_key(picture["media_key"], MAX_PICTURE_BYTES)
        else:
            raise DriverError("picture_missing", "give media_base64 or media_key")
    except MessageBuildError as exc:
        raise DriverError(exc.code, exc.message) from None
    if len(data) > MAX_PICTURE_BYTES:
        raise DriverError("picture_too_large", f"the picture is {len(data)} bytes; the limit is {MAX_PICTURE_BYTES}")
    if not data.startswith(JPEG_MAGIC):
        raise DriverError("picture_not_jpeg", "WhatsApp takes JPEG pictures only")
    return bytes(data)


# -- privacy ----------------------------------------------------------------------------
def check_privacy(settings: dict[str, str]) -> None:
    for name, value in settings.items():
        allowed = PRIVACY_VALUES.get(name)
        if allowed is None:
            raise DriverError("bad_privacy_setting", f"unknown privacy setting {name!r}")
        if value not in allowed:
            # whatsmeow: the server answers 400 bad-request
            raise DriverError("bad_privacy_value", f"{name} cannot be {value!r} (one of {', '.join(allowed)})")


def privacy_args(name: str, value: str) -> tuple[Any, Any]:
    """Our (setting, value) -> neonize's (PrivacySettingType, PrivacySetting) enums."""
    from neonize.utils.enum import PrivacySetting, PrivacySettingType  # noqa: PLC0415 - runner only, on use

    check_privacy({name: value})
    return PrivacySettingType(PRIVACY_NAMES[name]), PrivacySetting(value)


def privacy_json(settings: Any) -> dict[str, Optional[str]]:
    """neonize's `PrivacySettings` protobuf -> {last_seen, profile_photo, about, groups_add,
    read_receipts} (None where WhatsApp sent nothing)."""
    enum = type(settings).DESCRIPTOR.fields_by_name["LastSeen"].enum_type
    return {name: _PROTO_VALUES.get(enum.values_by_number[int(getattr(settings, field))].name)
            for name, field in PRIVACY_FIELDS.items()}


# -- blocklist and join requests ---------------------------------------------------------
def blocklist_json(blocklist: Any) -> list[str]:
    return sorted({text for text in (wa_chats.jid_text(jid) for jid in blocklist.JIDs) if text})


def requests_json(requests: Iterable[Any]) -> list[dict[str, Any]]:
    """neonize `GroupParticipantRequest`s -> [{jid, phone, requested_at}]."""
    out = []
    for request in requests:
        jid = wa_chats.jid_text(request.Participant) or ""
        user, _, server = jid.partition("@")
        at = int(request.TimeAt)
        out.append({"jid": jid, "phone": user.split(":")[0] if server == wa_chats.USER_SERVER else None,
                    "requested_at": datetime.fromtimestamp(at, timezone.utc).isoformat() if at else None})
    return out


def blocklist_action(action: str) -> Any:
    from neonize.utils.enum import BlocklistAction  # noqa: PLC0415 - runner only, on use

    try:
        return BlocklistAction(action)
    except ValueError:
        raise DriverError("bad_action", f"unknown blocklist action {action!r}") from None
