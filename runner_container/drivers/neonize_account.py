"""The neonize client's group administration, profile, privacy and blocklist calls (issue 17),
mixed into `NeonizeClient` (`neonize_driver.py`). Arguments and answers are translated in
`runner_container/wa_account.py`; whatsmeow's refusals become codes there.

neonize 0.5.2 (and its upstream main) exposes no `UpdateGroupRequestParticipants`, so
approving or rejecting join requests answers `not_supported` here, naming why; listing
them works (`GetGroupRequestParticipants`).
"""
from __future__ import annotations

from typing import Any, Callable

from runner_container.drivers.base import DriverError


def _jid(text: str) -> Any:
    from runner_container.drivers.neonize_driver import parse_jid  # noqa: PLC0415 - that module imports this one

    return parse_jid(text)


class NeonizeAccountCalls:
    """Needs `_live()` (the connected neonize client) and `driver.fetch_key` from the host class."""

    _live: Callable[[], Any]
    driver: Any

    def _call(self, default: str, action: Callable[[Any], Any], *, go_client: bool = False) -> Any:
        """`go_client`: the call dereferences whatsmeow's client or its device without checking
        (seen offline: SetStatusMessage and UpdateBlocklist with no client on neonize's Go side,
        SetPushName with a client that never logged in): it panics and takes the whole runner
        down, so it runs only while neonize says connected and logged in."""
        from runner_container import wa_account  # noqa: PLC0415

        client = self._live()
        if go_client and not client.is_connected:
            raise DriverError("not_connected", "the WhatsApp socket is not connected")
        if go_client and not client.is_logged_in:
            raise DriverError("not_logged_in", "the session is not logged in to WhatsApp")
        try:
            return action(client)
        except DriverError:
            raise
        except Exception as exc:  # neonize's *Error classes: whatsmeow's text -> a code
            raise wa_account.driver_error(exc, default) from exc

    def _picture(self, picture: dict[str, Any]) -> bytes:
        from runner_container import wa_account  # noqa: PLC0415

        self._live()  # not connected: refuse before reading the bucket
        return wa_account.picture_bytes(picture, getattr(self.driver, "fetch_key", None))

    # -- groups -------------------------------------------------------------------------
    def leave_group(self, group_jid: str) -> dict[str, Any]:
        self._call("leave_group_failed", lambda c: c.leave_group(_jid(group_jid)))
        return {"group_jid": group_jid, "left": True}

    def group_invite_link(self, group_jid: str, revoke: bool) -> dict[str, Any]:
        from runner_container import wa_account  # noqa: PLC0415

        link = self._call("invite_link_failed", lambda c: c.get_group_invite_link(_jid(group_jid), bool(revoke)))
        link = wa_account.invite_link(link)
        return {"group_jid": group_jid, "link": link, "code": wa_account.invite_code(link)}

    def group_invite_preview(self, code: str) -> dict[str, Any]:
        from runner_container import wa_chats  # noqa: PLC0415

        info = self._call("invite_preview_failed", lambda c: c.get_group_info_from_link(code))
        return {"group": wa_chats.group_json(info)}

    def join_group(self, code: str) -> dict[str, Any]:
        from runner_container import wa_chats  # noqa: PLC0415

        jid = self._call("join_group_failed", lambda c: c.join_group_with_link(code))
        return {"group_jid": wa_chats.jid_text(jid) or ""}

    def set_group_subject(self, group_jid: str, subject: str) -> dict[str, Any]:
        self._call("set_group_subject_failed", lambda c: c.set_group_name(_jid(group_jid), subject))
        return {"group_jid": group_jid, "subject": subject}

    def set_group_description(self, group_jid: str, description: str) -> dict[str, Any]:
        # whatsmeow's SetGroupTopic: previous id "" -> it reads the current one; new id "" -> it makes one
        self._call("set_group_description_failed",
                   lambda c: c.set_group_topic(_jid(group_jid), "", "", description))
        return {"group_jid": group_jid, "description": description}

    def set_group_picture(self, group_jid: str, picture: dict[str, Any]) -> dict[str, Any]:
        data = self._picture(picture)
        picture_id = self._call("set_group_picture_failed", lambda c: c.set_group_photo(_jid(group_jid), data))
        return {"group_jid": group_jid, "picture_id": str(picture_id)}

    def set_group_settings(self, group_jid: str, announce: bool | None, locked: bool | None) -> dict[str, Any]:
        jid = _jid(group_jid)
        if announce is not None:
            self._call("set_group_settings_failed", lambda c: c.set_group_announce(jid, bool(announce)))
        if locked is not None:
            self._call("set_group_settings_failed", lambda c: c.set_group_locked(jid, bool(locked)))
        return {"group_jid": group_jid, "announce": announce, "locked": locked}

    def group_requests(self, group_jid: str) -> dict[str, Any]:
        from runner_container import wa_account  # noqa: PLC0415

        requests = self._call("group_requests_failed", lambda c: c.get_group_request_participants(_jid(group_jid)))
        return {"group_jid": group_jid, "requests": wa_account.requests_json(requests)}

    def update_group_requests(self, group_jid: str, action: str, participants: list[str]) -> dict[str, Any]:
        self._live()
        raise DriverError("not_supported", "neonize 0.5.2 does not expose whatsmeow's UpdateGroupRequestParticipants: "
                          "approve or reject join requests from the phone (listing them works)")

    # -- profile and privacy --------------------------------------------------------------
    def set_push_name(self, name: str) -> dict[str, Any]:
        self._call("set_push_name_failed", lambda c: c.set_profile_name(name), go_client=True)
        return {"push_name": name}

    def set_about(self, about: str) -> dict[str, Any]:
        self._call("set_about_failed", lambda c: c.set_status_message(about), go_client=True)
        return {"about": about}

    def set_profile_picture(self, picture: dict[str, Any]) -> dict[str, Any]:
        data = self._picture(picture)
        picture_id = self._call("set_profile_picture_failed", lambda c: c.set_profile_photo(data))
        return {"picture_id": str(picture_id)}

    def get_privacy(self) -> dict[str, Any]:
        from runner_container import wa_account  # noqa: PLC0415

        settings = self._call("get_privacy_failed", lambda c: c.get_privacy_settings())
        privacy = wa_account.privacy_json(settings)
        if all(value is None for value in privacy.values()):
            # neonize answers an empty PrivacySettings when whatsmeow could not fetch them
            raise DriverError("privacy_unavailable", "WhatsApp did not answer the privacy settings")
        return {"privacy": privacy}

    def set_privacy(self, settings: dict[str, str]) -> dict[str, Any]:
        from runner_container import wa_account  # noqa: PLC0415

        wa_account.check_privacy(settings)
        for name, value in settings.items():
            self._set_privacy_setting(*wa_account.privacy_args(name, value))
        return self.get_privacy()

    def _set_privacy_setting(self, kind: Any, setting: Any) -> None:
        self._call("set_privacy_failed", lambda c: c.set_privacy_setting(kind, setting))

    # -- blocklist ------------------------------------------------------------------------
    def blocklist(self) -> dict[str, Any]:
        from runner_container import wa_account  # noqa: PLC0415

        return {"blocked": wa_account.blocklist_json(self._call("blocklist_failed", lambda c: c.get_blocklist()))}

    def update_blocklist(self, contact: str, action: str) -> dict[str, Any]:
        from runner_container import wa_account  # noqa: PLC0415

        change = wa_account.blocklist_action(action)
        answer = self._call("update_blocklist_failed", lambda c: c.update_blocklist(_jid(contact), change),
                            go_client=True)
        return {"blocked": wa_account.blocklist_json(answer)}
