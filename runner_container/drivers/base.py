"""The driver interface: what the session actor needs from a WhatsApp implementation.

A driver makes one `SessionClient` per session. The client reports what happens through
`sink(kind, data)` (kinds listed in `runner_container.translate`), from any thread; the
actor serialises everything. Methods may block (dialing, pairing) and raise
`DriverError(code, message)` with a snake_case code that becomes `last_error`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Optional

from runner_container.drivers.account_base import AccountCalls

Sink = Callable[[str, dict[str, Any]], None]


class DriverError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SessionConfig:
    session_id: str
    jid: Optional[str]  # the stored device (None: pair a new one)
    proxy_url: Optional[str]  # http://user:pass@host:port or socks5://...
    session_uid: Optional[str] = None  # the session row's id: what the driver's own rows (poll_secrets) are keyed by


class SessionClient(AccountCalls, ABC):
    @abstractmethod
    def connect(self) -> None:
        """Start connecting; returns quickly. Progress arrives through the sink (qr,
        paired, connected) and a failed dial as `retryable` {code: dial_failed}."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the socket and stop; the stored device stays."""

    @abstractmethod
    def logout(self) -> None:
        """Unlink the device from the phone (when connected) and forget it locally."""

    @abstractmethod
    def pair_phone(self, phone: str, show_push_notification: bool, timeout: float) -> str:
        """A pairing code for `phone`; the client must be connecting (socket up, not paired)."""

    @abstractmethod
    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one message (a `send_message` command payload: `to`, `type`, fields of the
        type); returns {message_id, timestamp}."""


    # -- chats, contacts and groups (not abstract: a driver without them answers `not_supported`)
    def mark_read(self, chat: str, message_ids: list[str], sender: str | None) -> None:
        """Send read receipts for `message_ids` in `chat` (a JID). `sender` (a user JID) is
        the messages' author; WhatsApp needs it in groups."""
        raise DriverError("not_supported", "this driver cannot mark messages read")

    def send_presence(self, state: str, chat: str | None) -> None:
        """`available`/`unavailable` for the account (chat None), or `composing`,
        `recording` (composing audio) or `paused` in `chat`."""
        raise DriverError("not_supported", "this driver cannot send presence")

    def reject_call(self, caller: str, call_id: str) -> None:
        """Reject (decline) the incoming call `call_id` from `caller` (the JID as the offer gave it)."""
        raise DriverError("not_supported", "this driver cannot reject calls")

    def check_contacts(self, phones: list[str]) -> list[dict[str, Any]]:
        """Which of `phones` (E.164 digits) have WhatsApp: one item per phone,
        {phone, on_whatsapp, jid, verified_name}."""
        raise DriverError("not_supported", "this driver cannot check numbers")

    def list_groups(self) -> list[dict[str, Any]]:
        """The groups the account is in, each as `group_info` gives it."""
        raise DriverError("not_supported", "this driver cannot list groups")

    def group_info(self, group_jid: str) -> dict[str, Any]:
        """{jid, name, topic, owner, participants_count, created_at (ISO-8601 or None),
        is_announce, is_locked, participants: [{jid, phone, is_admin, is_super_admin}]};
        DriverError `group_not_found` when there is no such group for this account."""
        raise DriverError("not_supported", "this driver cannot read groups")

    def create_group(self, name: str, participants: list[str]) -> dict[str, Any]:
        """Create a group with `participants` (user JIDs); the new group as `group_info` gives it."""
        raise DriverError("not_supported", "this driver cannot create groups")

    def contact_profile(self, jid: str) -> dict[str, Any]:
        """{jid, phone, on_whatsapp, about, picture_url, business_name} of a user JID: the
        message store's contact detail (fetched through the runner, cached by the API)."""
        raise DriverError("not_supported", "this driver cannot read profiles")

    def update_participants(self, group_jid: str, action: str, participants: list[str]) -> list[dict[str, Any]]:
        """`action` (add, remove, promote, demote) on each participant: one item per
        participant, in order, {jid, phone, ok, error} (error: a snake_case reason)."""
        raise DriverError("not_supported", "this driver cannot change group participants")


class Driver(ABC):
    name = "driver"

    @abstractmethod
    def client(self, config: SessionConfig, sink: Sink) -> SessionClient: ...

    def has_device(self, session_id: str, jid: str) -> bool:
        """Whether the device store still holds the session's device (it can vanish: a
        database restore, a manual cleanup, another driver)."""
        return True

    def forget_device(self, session_id: str, jid: str | None) -> None:
        """Drop the stored device without talking to WhatsApp (logout while offline)."""

    def start(self) -> None:
        """Start what the driver serves (the emulator's control API)."""

    def stop(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {}
