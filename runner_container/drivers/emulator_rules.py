"""The emulator's fixed rules about numbers and groups, and the shapes it answers with
(the driver in `emulator.py`, its control API in `emulator_api.py`)."""
from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any


def fake_qr() -> str:
    b64 = lambda n: base64.b64encode(secrets.token_bytes(n)).decode()  # noqa: E731
    return f"2@{b64(48)},{b64(32)},{b64(32)},{b64(32)}"


def fake_message_id() -> str:
    return "3EB0" + secrets.token_hex(8).upper()


def on_whatsapp(phone: str) -> bool:
    """The emulator's rule: a number is on WhatsApp unless its last digit is 0."""
    return not phone.endswith("0")


def _bare(jid: str) -> str:
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server or 's.whatsapp.net'}"


def _phone_of(jid: str) -> str | None:
    user, _, server = jid.partition("@")
    return user.split(":")[0] if server == "s.whatsapp.net" else None


def _reachable(jid: str) -> bool:
    user, _, server = jid.partition("@")
    return server == "lid" or on_whatsapp(user.split(":")[0])


def _change_participant(group: dict[str, Any], action: str, bare: str) -> str | None:
    """Apply `action` to one participant of the group; the reason it was not done, or None."""
    member = bare in group["members"]
    if action == "add":
        error = "already_member" if member else None if _reachable(bare) else "not_on_whatsapp"
        if error is None:
            group["members"].append(bare)
        return error
    if not member:
        return "not_member"
    if bare == group["owner"] and action in ("remove", "demote"):
        return "not_allowed"  # the creator stays (whatsmeow answers 403)
    if action == "remove":
        group["members"].remove(bare)
        group["admins"].discard(bare)
    elif action == "promote":
        group["admins"].add(bare)
    elif action == "demote":
        group["admins"].discard(bare)
    return None


def _group_view(group: dict[str, Any]) -> dict[str, Any]:
    participants = [{"jid": jid, "phone": _phone_of(jid), "is_admin": jid in group["admins"],
                     "is_super_admin": jid == group["owner"]} for jid in group["members"]]
    return {"jid": group["jid"], "name": group["name"], "topic": group.get("topic"), "owner": group["owner"],
            "participants_count": len(participants),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(group["created"])),
            "is_announce": bool(group.get("announce")), "is_locked": bool(group.get("locked")),
            "participants": participants}




def _without_credentials(url: str | None) -> str | None:
    """The proxy this client would dial through, as `scheme://host:port` (never the password)."""
    if not url:
        return None
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def _render(address: str) -> dict[str, Any]:
    digits = re.sub(r"\D", "", address.split("@")[0])
    jid = address if "@" in address else f"{digits}@s.whatsapp.net"
    return {"jid": jid, "phone": digits if jid.endswith("@s.whatsapp.net") else None}


_MEMBER_CHANGES = {
    "added": lambda g, jid: jid in g["members"] or g["members"].append(jid),
    "removed": lambda g, jid: jid in g["members"] and (g["members"].remove(jid), g["admins"].discard(jid)),
    "promoted": lambda g, jid: g["admins"].add(jid),
    "demoted": lambda g, jid: g["admins"].discard(jid),
}


def apply_group_change(group: dict[str, Any] | None, body: dict[str, Any]) -> None:
    """Keep the emulator's own view of a group (group_info, mention_all) in step with a
    change the control API plays (`/groupchange`); a group it does not hold is left alone."""
    if group is None:
        return
    change = _MEMBER_CHANGES.get(str(body.get("action")))
    for person in body.get("participants") or []:
        text = str(person)
        if change is not None:
            change(group, _bare(text) if "@" in text else f"{re.sub(r'[^0-9]', '', text)}@s.whatsapp.net")
    if "subject" in body:
        group["name"] = str(body["subject"])
    if "description" in body:
        group["topic"] = body["description"]
