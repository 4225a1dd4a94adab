"""The emulator's group administration, profile, privacy and blocklist (issue 17), mixed into
`EmulatorClient` (`emulator.py`), with the control API actions that play the other side.

Rules, as WhatsApp applies them (refusals with the codes the neonize driver maps whatsmeow's
errors to, `runner_container/wa_account.py`):
- invite links, settings and join requests are for admins (`not_admin`); subject,
  description and picture too once the group is `locked` (only admins edit info);
- a code no group has is `invite_invalid`, a revoked one `invite_revoked`; joining a group
  that approves members files a join request (the answer is the group's JID either way);
- pictures are JPEG within `MAX_PICTURE_BYTES` (`picture_bytes`, shared with neonize);
- the push name set here is stored with the device, so account presence works after it;
- privacy starts as WhatsApp's defaults (everyone); blocking is idempotent, and a blocked
  contact's 1:1 messages are not delivered (the control API's `inbound` answers 409 `blocked`).
State lives beside the groups, per session in memory (`EmulatorDriver.chat_state`).

Control API (`emulator_api.py` hands these actions here):
    POST /emulator/sessions/{id}/invites   {"name", "participants": [...], "approval": bool}
                                           a group someone else owns that this session is not in,
                                           reachable by the returned {jid, code, link}
    POST /emulator/sessions/{id}/requests  {"group_jid", "participants": [...]} people asking to
                                           join a group of this session (pending approval)
"""
from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

from runner_container import wa_account
from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_rules import _bare, _group_view, _phone_of

CONTROL_ACTIONS = ("invites", "requests")
DEFAULT_PRIVACY = {"last_seen": "all", "profile_photo": "all", "about": "all", "groups_add": "all",
                   "read_receipts": "all"}


def _refuse(text: str, default: str) -> DriverError:
    """A refusal in whatsmeow's words, coded as the neonize driver codes it."""
    return wa_account.driver_error(Exception(text), default)


class EmulatorAccountCalls:
    """Needs `_connected()`, `_group()`, `_me()`, `_log()`, `driver` and `config` from `EmulatorClient`."""

    driver: Any
    config: Any
    _connected: Callable[[], dict[str, Any]]
    _group: Callable[[dict[str, Any], str], dict[str, Any]]
    _me: Callable[[], str]
    _log: Callable[..., None]
    _lock: Any
    push_name: str | None
    jid: str | None

    def _admin_group(self, state: dict[str, Any], group_jid: str, *, info: bool = False) -> dict[str, Any]:
        """The group, when this account may change it: admins only, or (`info`) anyone
        unless the group is locked."""
        group = self._group(state, group_jid)
        if self._me() not in group["admins"] and (not info or group.get("locked")):
            raise _refuse("info query returned status 401: not-authorized", "not_admin")
        return group

    def _by_code(self, state: dict[str, Any], code: str) -> dict[str, Any]:
        code = wa_account.invite_code(code)
        for group in state["groups"].values():
            if group.get("invite_code") == code:
                return group
            if code in group.get("revoked_codes", ()):
                raise _refuse("that group invite link has been revoked", "join_group_failed")
        raise _refuse("that group invite link is not valid", "join_group_failed")

    def _picture(self, picture: dict[str, Any]) -> str:
        data = wa_account.picture_bytes(picture, self.driver.fetch_key)
        return str(int(hashlib.sha256(data).hexdigest()[:12], 16))

    # -- groups -------------------------------------------------------------------------
    def leave_group(self, group_jid: str) -> dict[str, Any]:
        state, me = self._connected(), self._me()
        with self.driver._lock:
            group = self._group(state, group_jid)
            group["members"].remove(me)
            group["admins"].discard(me)
        self._log(state, "leave_group", group_jid=group_jid)
        return {"group_jid": group_jid, "left": True}

    def group_invite_link(self, group_jid: str, revoke: bool) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            group = self._admin_group(state, group_jid)
            if revoke and group.get("invite_code"):
                group.setdefault("revoked_codes", []).append(group.pop("invite_code"))
            code = group.setdefault("invite_code", wa_account.new_invite_code())
        self._log(state, "invite_link", group_jid=group_jid, revoke=bool(revoke))
        return {"group_jid": group_jid, "link": wa_account.invite_link(code), "code": code}

    def group_invite_preview(self, code: str) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            view = _group_view(self._by_code(state, code))
        self._log(state, "invite_preview", code=code)
        return {"group": view}

    def join_group(self, code: str) -> dict[str, Any]:
        state, me = self._connected(), self._me()
        with self.driver._lock:
            group = self._by_code(state, code)
            if me in group["members"]:
                raise DriverError("already_member", f"this account is already in {group['jid']}")
            if group.get("approval"):
                group.setdefault("requests", {})[me] = int(time.time())
            else:
                group["members"].append(me)
        self._log(state, "join_group", group_jid=group["jid"], code=code)
        return {"group_jid": group["jid"]}

    def set_group_subject(self, group_jid: str, subject: str) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            self._admin_group(state, group_jid, info=True)["name"] = subject
        self._log(state, "group_subject", group_jid=group_jid, subject=subject)
        return {"group_jid": group_jid, "subject": subject}

    def set_group_description(self, group_jid: str, description: str) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            self._admin_group(state, group_jid, info=True)["topic"] = description or None
        self._log(state, "group_description", group_jid=group_jid, description=description)
        return {"group_jid": group_jid, "description": description}

    def set_group_picture(self, group_jid: str, picture: dict[str, Any]) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            self._admin_group(state, group_jid, info=True)
        picture_id = self._picture(picture)
        with self.driver._lock:
            self._group(state, group_jid)["picture_id"] = picture_id
        self._log(state, "group_picture", group_jid=group_jid, picture_id=picture_id)
        return {"group_jid": group_jid, "picture_id": picture_id}

    def set_group_settings(self, group_jid: str, announce: bool | None, locked: bool | None) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            group = self._admin_group(state, group_jid)
            if announce is not None:
                group["announce"] = bool(announce)
            if locked is not None:
                group["locked"] = bool(locked)
        self._log(state, "group_settings", group_jid=group_jid, announce=announce, locked=locked)
        return {"group_jid": group_jid, "announce": announce, "locked": locked}

    def group_requests(self, group_jid: str) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            pending = dict(self._admin_group(state, group_jid).get("requests", {}))
        requests = [{"jid": jid, "phone": _phone_of(jid),
                     "requested_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))}
                    for jid, at in sorted(pending.items(), key=lambda item: item[1])]
        return {"group_jid": group_jid, "requests": requests}

    def update_group_requests(self, group_jid: str, action: str, participants: list[str]) -> dict[str, Any]:
        if action not in ("approve", "reject"):
            raise DriverError("bad_action", f"unknown join request action {action!r}")
        state = self._connected()
        results = []
        with self.driver._lock:
            group = self._admin_group(state, group_jid)
            pending = group.setdefault("requests", {})
            for jid in participants:
                bare = _bare(jid)
                ok = pending.pop(bare, None) is not None
                if ok and action == "approve" and bare not in group["members"]:
                    group["members"].append(bare)
                results.append({"jid": jid, "phone": _phone_of(bare), "ok": ok,
                                "error": None if ok else "no_request"})
        self._log(state, "update_group_requests", group_jid=group_jid, action=action, participants=list(participants))
        return {"group_jid": group_jid, "action": action, "participants": results}

    # -- profile and privacy --------------------------------------------------------------
    def set_push_name(self, name: str) -> dict[str, Any]:
        state = self._connected()
        with self._lock:
            self.push_name = name
            jid = self.jid
        if jid:
            self.driver.store_device(self.config.session_id, jid, name)  # as whatsmeow keeps it in its store
        self._log(state, "push_name", name=name)
        return {"push_name": name}

    def set_about(self, about: str) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            state.setdefault("profile", {})["about"] = about
        self._log(state, "about", about=about)
        return {"about": about}

    def set_profile_picture(self, picture: dict[str, Any]) -> dict[str, Any]:
        state = self._connected()
        picture_id = self._picture(picture)
        with self.driver._lock:
            state.setdefault("profile", {})["picture_id"] = picture_id
        self._log(state, "profile_picture", picture_id=picture_id)
        return {"picture_id": picture_id}

    def get_privacy(self) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            return {"privacy": dict(state.setdefault("privacy", dict(DEFAULT_PRIVACY)))}

    def set_privacy(self, settings: dict[str, str]) -> dict[str, Any]:
        state = self._connected()
        wa_account.check_privacy(settings)
        with self.driver._lock:
            state.setdefault("privacy", dict(DEFAULT_PRIVACY)).update(settings)
        self._log(state, "privacy", settings=dict(settings))
        return self.get_privacy()

    # -- blocklist ------------------------------------------------------------------------
    def blocklist(self) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            return {"blocked": sorted(state.setdefault("blocked", set()))}

    def refuse_if_blocked(self, sender: str, chat: str | None) -> None:
        """The control API's `inbound`: a 1:1 message from a blocked contact never arrives
        (WhatsApp's server drops it; in groups blocked members' messages still arrive)."""
        if chat and chat.endswith("@g.us"):
            return
        digits = "".join(ch for ch in sender.split("@")[0].split(":")[0] if ch.isdigit())
        state = self.driver.chat_state(self.config.session_id)
        with self.driver._lock:
            blocked = state.get("blocked", set())
            if _bare(sender if "@" in sender else f"{digits}@s.whatsapp.net") in blocked:
                raise DriverError("blocked", f"{sender} is blocked by this account: WhatsApp does not deliver it")

    def update_blocklist(self, contact: str, action: str) -> dict[str, Any]:
        if action not in ("block", "unblock"):
            raise DriverError("bad_action", f"unknown blocklist action {action!r}")
        state = self._connected()
        with self.driver._lock:
            blocked = state.setdefault("blocked", set())
            (blocked.add if action == "block" else blocked.discard)(_bare(contact))
        self._log(state, "blocklist", contact=contact, action=action)
        return self.blocklist()


def control(driver: Any, client: Any, session_id: str, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The control API's `invites` and `requests` actions: (status, body)."""
    if action == "invites":
        members = [_bare(str(p)) for p in body.get("participants") or []]
        owner = members[0] if members else "5511900000001@s.whatsapp.net"
        group = driver.add_group(session_id, str(body.get("name") or "a group"), owner=owner,
                                 members=[owner, *members], admins=[owner])
        code = wa_account.new_invite_code()
        with driver._lock:
            group["invite_code"] = code
            group["approval"] = bool(body.get("approval"))
        return 200, {"jid": group["jid"], "code": code, "link": wa_account.invite_link(code)}
    state = driver.chat_state(session_id)
    with driver._lock:
        group = state["groups"].get(str(body.get("group_jid")))
        if group is None:
            return 404, {"code": "group_not_found", "message": "no such group for this session"}
        requests = group.setdefault("requests", {})
        for person in body.get("participants") or []:
            requests[_bare(str(person))] = int(time.time()) + len(requests)
        return 200, {"group_jid": group["jid"], "pending": sorted(requests)}
