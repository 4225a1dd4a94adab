"""Group and contact events: what changed, with the new values.

whatsmeow reports a group change as one `GroupInfoEvent` that may carry several things
at once (a new subject and a participant who left); the contract splits it into
`group.participants` (one event per action) and `group.update` (`changes`: only what
changed). `NameTracker` plays whatsmeow's PushName / BusinessName events, which neonize
does not expose: it remembers the names each contact's messages carried and reports a
change (`contact.updated`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from runner_container.translate_common import Resolver, jid_string, render_jid, ts

_PARTICIPANT_ACTIONS = (("Join", "added"), ("Leave", "removed"), ("Promote", "promoted"), ("Demote", "demoted"))


def _changes(event: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if event.HasField("Name"):
        changes["subject"] = event.Name.Name
    if event.HasField("Topic"):
        changes["description"] = None if event.Topic.TopicDeleted else event.Topic.Topic
    if event.HasField("Announce"):
        changes["announce"] = event.Announce.IsAnnounce
    if event.HasField("Locked"):
        changes["locked"] = event.Locked.isLocked
    if event.HasField("Ephemeral"):
        changes["ephemeral_seconds"] = int(event.Ephemeral.DisappearingTimer) if event.Ephemeral.IsEphemeral else 0
    if event.HasField("Delete") and event.Delete.Deleted:
        changes["deleted"] = True
    if event.NewInviteLink:
        changes["invite_link"] = event.NewInviteLink
    return changes


def group_info_events(event: Any, resolve_pn: Resolver) -> list[dict[str, Any]]:
    group = render_jid(event.JID)
    by = render_jid(event.Sender, resolve_pn)
    when = ts(event.Timestamp)
    out = []
    for field, action in _PARTICIPANT_ACTIONS:
        people = list(getattr(event, field))
        if people:
            # a member who leaves by themselves: WhatsApp names them as the sender too
            out.append({"event": "group.participants", "data": {
                "group": group, "action": action, "by": by,
                "participants": [render_jid(p, resolve_pn) for p in people],
                "reason": (event.JoinReason or None) if field == "Join" else None, "timestamp": when}})
    changes = _changes(event)
    if changes or not out:  # an event of a kind we do not read still says the group changed
        out.append({"event": "group.update", "data": {"group": group, "kind": "changed", "by": by,
                                                      "timestamp": when, "changes": changes}})
    return out


def joined_group_event(event: Any, resolve_pn: Resolver) -> dict[str, Any]:
    info = event.GroupInfo
    return {"event": "group.update", "data": {
        "group": render_jid(info.JID), "kind": "joined", "by": render_jid(event.Sender, resolve_pn, event.SenderPN),
        "timestamp": None,
        "changes": {"subject": info.GroupName.Name, "description": info.GroupTopic.Topic or None,
                    "announce": info.GroupAnnounce.IsAnnounce, "locked": info.GroupLocked.isLocked,
                    "participants_count": len(info.Participants)}}}


class NameTracker:
    """The last push name and business name seen per contact (bounded, per client).

    The first message of a contact sets the baseline silently: after a restart the
    runner cannot tell a change from a first sight."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._seen: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _remember(self, jid: str, push: str | None, business: str | None
                  ) -> tuple[tuple[str | None, str | None] | None, tuple[str | None, str | None]]:
        """(names before, names now) of a contact; a missing name keeps the last one."""
        with self._lock:
            before = self._seen.pop(jid, None)
            old_push, old_business = before if before else (None, None)
            kept = (push or old_push, business or old_business)
            self._seen[jid] = kept
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
        return before, kept

    def observe(self, event: Any, resolve_pn: Resolver) -> dict[str, Any] | None:
        """A `contact.updated` event when this message's names differ from the last ones seen."""
        info = event.Info
        source = info.MessageSource
        jid = jid_string(source.Sender)
        if source.IsFromMe or not jid:
            return None
        push = info.Pushname or None
        business = (info.VerifiedName.Details.verifiedName or None) if info.HasField("VerifiedName") else None
        before, kept = self._remember(_person(jid), push, business)
        if before is None:  # first sight: the baseline
            return None
        changed = [name for name, new, old in (("push_name", push, before[0]), ("business_name", business, before[1]))
                   if new and new != old]
        return _contact_updated(event, resolve_pn, changed, before, kept) if changed else None


def _contact_updated(event: Any, resolve_pn: Resolver, changed: list[str], before: tuple[str | None, str | None],
                     kept: tuple[str | None, str | None]) -> dict[str, Any]:
    source = event.Info.MessageSource
    return {"event": "contact.updated", "data": {
        "contact": render_jid(source.Sender, resolve_pn, source.SenderAlt), "changed": changed,
        "push_name": kept[0], "previous_push_name": before[0] if "push_name" in changed else None,
        "business_name": kept[1], "previous_business_name": before[1] if "business_name" in changed else None,
        "timestamp": ts(event.Info.Timestamp)}}


def _person(jid: str) -> str:
    """A contact, whichever of their devices wrote (`user:device@server` -> `user@server`)."""
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server}"
