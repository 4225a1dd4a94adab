"""The emulator's chats, contacts and groups: what `EmulatorClient` answers for the chat
commands of the command table, by fixed rules kept per session in memory (groups do not
survive a runner restart): a phone number is on WhatsApp unless its last digit is 0;
a group created through the API has the session as its super admin and every requested
participant who is on WhatsApp; participant changes apply with whatsmeow's per-participant
outcomes (not_on_whatsapp, already_member, not_member, not_allowed for the creator), and a
session that is not an admin of the group is refused as a whole (`not_admin`).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from runner_container.drivers.base import DriverError
from runner_container.drivers.emulator_rules import (_bare, _change_participant, _group_view, _phone_of, _reachable,
                                                     on_whatsapp)

if TYPE_CHECKING:  # pragma: no cover
    import threading

    from runner_container.drivers.base import SessionConfig
    from runner_container.drivers.emulator import EmulatorDriver


class EmulatorChats:
    """Mixed into `EmulatorClient` (which provides the attributes declared here)."""

    driver: "EmulatorDriver"
    config: "SessionConfig"
    state: str
    jid: str | None
    push_name: str | None
    _lock: "threading.RLock"

    def _connected(self) -> dict[str, Any]:
        with self._lock:
            if self.state != "connected":
                raise DriverError("not_connected", "the session is not connected")
        return self.driver.chat_state(self.config.session_id)

    def _log(self, chat_state: dict[str, Any], kind: str, **data: Any) -> None:
        with self.driver._lock:
            chat_state["activity"].append({"kind": kind, **data, "at": time.time()})
            del chat_state["activity"][:-1000]

    def _me(self) -> str:
        return _bare(self.jid or "0@s.whatsapp.net")

    def mark_read(self, chat: str, message_ids: list[str], sender: str | None) -> None:
        state = self._connected()
        self._log(state, "read", chat=chat, message_ids=list(message_ids), sender=sender)

    def send_presence(self, state_name: str, chat: str | None) -> None:
        from runner_container import wa_chats  # noqa: PLC0415

        state = self._connected()
        if chat is None and not self.push_name:
            # whatsmeow's SendPresence: ErrNoPushName, mapped as the neonize driver maps it
            raise wa_chats.driver_error(Exception("can't send presence without PushName set"), "presence_failed")
        self._log(state, "presence", state=state_name, chat=chat)

    def check_contacts(self, phones: list[str]) -> list[dict[str, Any]]:
        state = self._connected()
        self._log(state, "check_contacts", phones=list(phones))
        return [{"phone": p, "on_whatsapp": on_whatsapp(p), "jid": f"{p}@s.whatsapp.net" if on_whatsapp(p) else None,
                 "verified_name": None} for p in phones]

    def contact_profile(self, jid: str) -> dict[str, Any]:
        from runner_container.drivers.emulator_history import profile  # noqa: PLC0415

        self._log(self._connected(), "contact_profile", jid=jid)
        return profile(jid)

    def list_groups(self) -> list[dict[str, Any]]:
        state = self._connected()
        me = self._me()
        with self.driver._lock:
            groups = [g for g in state["groups"].values() if me in g["members"]]
            return [_group_view(g) for g in sorted(groups, key=lambda g: g["created"])]

    def group_info(self, group_jid: str) -> dict[str, Any]:
        state = self._connected()
        with self.driver._lock:
            return _group_view(self._group(state, group_jid))

    def _group(self, state: dict[str, Any], group_jid: str) -> dict[str, Any]:
        group = state["groups"].get(group_jid)
        if group is None or self._me() not in group["members"]:
            raise DriverError("group_not_found", f"group {group_jid} not found (or this account is not in it)")
        return group

    def create_group(self, name: str, participants: list[str]) -> dict[str, Any]:
        state = self._connected()
        me = self._me()
        group = self.driver.add_group(self.config.session_id, name, owner=me,
                                      members=[me] + [_bare(p) for p in participants if _reachable(p)],
                                      admins=[me])
        self._log(state, "create_group", group_jid=group["jid"], name=name, participants=list(participants))
        with self.driver._lock:
            return _group_view(group)

    def update_participants(self, group_jid: str, action: str, participants: list[str]) -> list[dict[str, Any]]:
        state = self._connected()
        me = self._me()
        results = []
        with self.driver._lock:
            group = self._group(state, group_jid)
            if me not in group["admins"]:
                raise DriverError("not_admin", f"this account is not an admin of {group_jid}")
            for jid in participants:
                bare = _bare(jid)
                error = _change_participant(group, action, bare)
                results.append({"jid": jid, "phone": _phone_of(bare), "ok": error is None, "error": error})
        self._log(state, "update_participants", group_jid=group_jid, action=action, participants=list(participants))
        return results
