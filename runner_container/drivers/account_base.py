"""What a session client does for group administration, the account's profile and privacy,
and the blocklist (issue 17). `SessionClient` inherits these; a driver without them answers
`not_supported`. Each is a `ClientCall` row of `chalicelib/commands/catalog.py`: the
arguments are the command payload's fields, in order, and the answer (a dict) is the
command's result.

Pictures arrive as the command's `{media_base64}` or `{media_key}` and are checked by
`runner_container.wa_account.picture_bytes` (JPEG, size-capped) in both drivers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.drivers.base import DriverError


def _unsupported(what: str) -> "DriverError":
    from runner_container.drivers.base import DriverError  # noqa: PLC0415 - base imports this module

    return DriverError("not_supported", f"this driver cannot {what}")


class AccountCalls:
    # -- groups -------------------------------------------------------------------------
    def leave_group(self, group_jid: str) -> dict[str, Any]:
        """Leave the group: {group_jid, left: true}; `group_not_found` when not in it."""
        raise _unsupported("leave groups")

    def group_invite_link(self, group_jid: str, revoke: bool) -> dict[str, Any]:
        """{group_jid, link, code}; with `revoke`, the old link stops working and this is the
        new one. Admins only (`not_admin`)."""
        raise _unsupported("read invite links")

    def group_invite_preview(self, code: str) -> dict[str, Any]:
        """{group: group_info's shape} of the group an invite code leads to, without joining;
        `invite_invalid` / `invite_revoked`."""
        raise _unsupported("preview invite links")

    def join_group(self, code: str) -> dict[str, Any]:
        """Join by invite code: {group_jid}. A group that approves members gets a join
        request instead (WhatsApp answers the same way)."""
        raise _unsupported("join groups")

    def set_group_subject(self, group_jid: str, subject: str) -> dict[str, Any]:
        raise _unsupported("rename groups")

    def set_group_description(self, group_jid: str, description: str) -> dict[str, Any]:
        """An empty description removes it."""
        raise _unsupported("change group descriptions")

    def set_group_picture(self, group_jid: str, picture: dict[str, Any]) -> dict[str, Any]:
        """{picture_id}."""
        raise _unsupported("change group pictures")

    def set_group_settings(self, group_jid: str, announce: bool | None, locked: bool | None) -> dict[str, Any]:
        """announce: only admins send; locked: only admins edit the group's info. None: unchanged.
        Answers {group_jid, announce, locked} as asked."""
        raise _unsupported("change group settings")

    def group_requests(self, group_jid: str) -> dict[str, Any]:
        """{requests: [{jid, phone, requested_at}]}: people waiting for approval. Admins only."""
        raise _unsupported("list join requests")

    def update_group_requests(self, group_jid: str, action: str, participants: list[str]) -> dict[str, Any]:
        """approve/reject: {participants: [{jid, phone, ok, error}]}, one per requested JID."""
        raise _unsupported("approve or reject join requests")

    # -- profile and privacy --------------------------------------------------------------
    def set_push_name(self, name: str) -> dict[str, Any]:
        raise _unsupported("set the push name")

    def set_about(self, about: str) -> dict[str, Any]:
        raise _unsupported("set the about text")

    def set_profile_picture(self, picture: dict[str, Any]) -> dict[str, Any]:
        """{picture_id}."""
        raise _unsupported("set the profile picture")

    def get_privacy(self) -> dict[str, Any]:
        """{privacy: {last_seen, profile_photo, about, groups_add, read_receipts}}."""
        raise _unsupported("read privacy settings")

    def set_privacy(self, settings: dict[str, str]) -> dict[str, Any]:
        """Change the given settings; answers as `get_privacy` after the change."""
        raise _unsupported("change privacy settings")

    # -- blocklist ------------------------------------------------------------------------
    def blocklist(self) -> dict[str, Any]:
        """{blocked: [jid, ...]} (sorted)."""
        raise _unsupported("read the blocklist")

    def update_blocklist(self, contact: str, action: str) -> dict[str, Any]:
        """block/unblock a user JID; answers as `blocklist` after the change."""
        raise _unsupported("block contacts")
