"""One session's polls as its driver sees them: kept when sent or received, looked up
when a vote arrives (`translate(..., polls=SessionPolls.lookup)`). Both drivers use it,
so the emulator's votes are decrypted by the same code as WhatsApp's."""
from __future__ import annotations

import logging
from typing import Any, Optional

from chalicelib.repositories.polls import PollStore
from runner_container.poll_crypto import non_ad
from runner_container.translate import poll_record

log = logging.getLogger(__name__)


class SessionPolls:
    def __init__(self, store: Optional[PollStore], session_uid: Optional[str]):
        self.store = store
        self.session_uid = session_uid

    def lookup(self, poll_id: str) -> Optional[dict[str, Any]]:
        if self.store is None or not self.session_uid:
            return None
        try:
            return self.store.find(self.session_uid, poll_id)
        except Exception:  # the vote is reported as poll_unknown rather than lost
            log.warning("poll lookup failed", extra={"poll_id": poll_id}, exc_info=True)
            return None

    def remember(self, poll: Optional[dict[str, Any]]) -> None:
        if poll is None or self.store is None or not self.session_uid:
            return
        try:
            self.store.remember(self.session_uid, poll)
        except Exception:  # the poll itself is still delivered; its votes will say poll_unknown
            log.warning("could not keep a poll's secret", extra={"poll_id": poll.get("poll_id")}, exc_info=True)

    def remember_received(self, event: Any) -> None:
        """A poll in a MessageEv (received, or sent from this account's phone)."""
        self.remember(poll_record(event))

    def remember_sent(self, message_id: str, chat: str, own_jid: Optional[str], message: Any) -> None:
        """A poll this session just sent (`message`: the built protobuf, with its secret)."""
        if isinstance(message, str) or not message.HasField("pollCreationMessage"):
            return
        poll = message.pollCreationMessage
        self.remember({"poll_id": message_id, "chat_jid": chat, "creator_jid": non_ad(own_jid or ""),
                       "creator_alt": None, "secret": bytes(message.messageContextInfo.messageSecret),
                       "name": poll.name, "options": [o.optionName for o in poll.options]})
