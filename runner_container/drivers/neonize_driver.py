"""The neonize driver: one whatsmeow client per session, device store in our PostgreSQL.

whatsmeow keeps its device rows (`whatsmeow_*` tables) in the same database as zemeow,
through neonize's `postgres://` URL, so any runner can restore any session after a
failover without a new QR: the client is built with the session's stored device JID
(or `new_device=True` to pair a fresh one; never "the first device in the store", which
would mix sessions up). The session's proxy (HTTP or SOCKS5) is handed to whatsmeow,
which dials `web.whatsapp.com:443` through it.

`NewClient.connect()` blocks for the life of the connection, so each client runs it on
its own thread; a dial that fails returns with `NeonizeError`, reported to the actor as
`retryable` {code: dial_failed}; `stop()` ends it.
"""
from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from chalicelib.db import Database
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.repositories.devices import DeviceStore
from chalicelib.repositories.polls import PollStore
from runner_container.drivers.base import Driver, DriverError, SessionClient, SessionConfig, Sink
from runner_container.drivers.neonize_account import NeonizeAccountCalls


def _import_neonize_quietly() -> None:
    """neonize calls logging.basicConfig() at import: undo it, so the runner's log stays
    one JSON object per line (Powertools), and keep whatsmeow's chatter at WARNING."""
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    import neonize.client  # noqa: F401

    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in ("whatsmeow", "whatsmeow.Client", "Whatsmeow.Database", "neonize"):
        logging.getLogger(name).setLevel(logging.WARNING)


_import_neonize_quietly()
from runner_container.poll_memory import SessionPolls  # noqa: E402
from runner_container.translate import MEDIA_KINDS, NameTracker, jid_string, translate  # noqa: E402 - after the quiet import


# neonize's Go side registers each client in a plain map at the start of its blocking
# `Neonize()` call (and removes it on Stop): two threads doing that at once kill the
# process with "fatal error: concurrent map writes" (seen with ~100 clients starting
# together). So client starts and stops pass one gate, a start holding it for
# START_SPACING: at most ten logins a second per runner, which also staggers a mass
# reconnect after failover, as WhatsApp prefers.
_GO_GATE = threading.Lock()
START_SPACING = 0.1
STOP_GATE_HOLD = 2.0


def neonize_database_url(url: str) -> str:
    """psycopg's URL -> the `postgres://` form whatsmeow's pgx driver takes (unix sockets via ?host=)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("sslmode", "disable")
    netloc = parts.netloc
    if netloc.endswith(":@") or ":@" in netloc:  # empty password: pgx wants none at all
        netloc = netloc.replace(":@", "@")
    return urlunsplit(("postgres", netloc, parts.path, urlencode(query, safe="/"), ""))


def parse_jid(text: str) -> Any:
    from neonize.proto.Neonize_pb2 import JID

    user_part, _, server = text.partition("@")
    user, _, device = user_part.partition(":")
    return JID(User=user, Device=int(device or 0), Server=server or "s.whatsapp.net", RawAgent=0, Integrator=0,
               IsEmpty=False)


def _event_types() -> list[type]:
    from neonize import events as ev

    return [ev.PairStatusEv, ev.ConnectedEv, ev.DisconnectedEv, ev.LoggedOutEv, ev.StreamReplacedEv,
            ev.TemporaryBanEv, ev.ClientOutdatedEv, ev.ConnectFailureEv, ev.StreamErrorEv, ev.MessageEv,
            ev.ReceiptEv, ev.ChatPresenceEv, ev.PresenceEv, ev.CallOfferEv, ev.JoinedGroupEv, ev.GroupInfoEv,
            ev.KeepAliveTimeoutEv, ev.KeepAliveRestoredEv]


class NeonizeClient(NeonizeAccountCalls, SessionClient):
    def __init__(self, driver: "NeonizeDriver", config: SessionConfig, sink: Sink):
        self.driver = driver
        self.config = config
        self.sink = sink
        self.client: Any = None
        self.thread: threading.Thread | None = None
        self.socket_up = threading.Event()
        self._stopping = False
        self.polls = SessionPolls(driver.polls, config.session_uid)
        self.names = NameTracker()

    def _build(self) -> Any:
        from neonize.client import NewClient

        if self.config.jid:
            client = NewClient(self.driver.neonize_url, jid=parse_jid(self.config.jid), uuid=self.config.session_id)
        else:
            client = NewClient(self.driver.neonize_url, uuid=self.config.session_id, new_device=True)

        def on_qr(_client: Any, data: bytes) -> None:
            self.socket_up.set()
            self.sink("qr", {"code": data.decode() if isinstance(data, bytes) else str(data)})

        client.event.qr(on_qr)
        for event_type in _event_types():
            client.event(event_type)(self._on_event)
        return client

    def _resolve_pn(self, jid: Any) -> str | None:
        pn = self.client.get_pn_from_lid(jid)
        return pn.User or None

    def _on_event(self, _client: Any, event: Any) -> None:
        from neonize.events import MessageEv

        if isinstance(event, MessageEv):
            self.polls.remember_received(event)  # before its votes can arrive
        for kind, data in translate(event, self._resolve_pn, self.polls.lookup, self.names):
            if kind == "connected":
                self.socket_up.set()
                try:
                    me = self.client.get_me()
                    data = {**data, "jid": jid_string(me.JID) or self.config.jid}
                except Exception:  # noqa: BLE001 - the actor keeps the jid it knows
                    data = {**data, "jid": self.config.jid}
            elif kind == "event" and data["data"].get("type") in MEDIA_KINDS and hasattr(event, "Message"):
                # received media is fetched later, off this thread (runner_container/inbound_media.py)
                data["data"]["download"] = lambda message=event.Message: self.client.download_any(message)
            self.sink(kind, data)

    def connect(self) -> None:
        from neonize.utils.enum import ClientName  # noqa: F401 - fail here if neonize is broken
        from neonize._binder import ProxySettings

        self._stopping = False
        self.socket_up.clear()
        self.client = self._build()
        proxy = ProxySettings(proxy_address=self.config.proxy_url) if self.config.proxy_url else None

        def run() -> None:
            try:
                self.client.connect(proxy)
            except Exception as exc:  # noqa: BLE001 - NeonizeError: the dial failed
                if not self._stopping:
                    self.sink("retryable", {"code": "dial_failed", "message": _clean(str(exc))})
                return
            if not self._stopping:
                self.sink("disconnected", {"reason": "network"})

        self.thread = threading.Thread(target=run, name=f"neonize-{self.config.session_id}", daemon=True)
        with _GO_GATE:
            self.thread.start()
            self.thread.join(START_SPACING)  # the Go side registers the client meanwhile

    def disconnect(self) -> None:
        self._stopping = True
        if self.client is not None:
            client = self.client

            def stop() -> None:
                try:
                    client.stop()
                except Exception:  # noqa: BLE001 - already stopped
                    pass

            # Stop passes the gate too, but never holds it for long: a Stop stuck behind a
            # dial that a proxy holds open must not block every other session's start
            stopper = threading.Thread(target=stop, name=f"neonize-stop-{self.config.session_id}", daemon=True)
            with _GO_GATE:
                stopper.start()
                stopper.join(STOP_GATE_HOLD)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)

    def logout(self) -> None:
        if self.client is not None and self.socket_up.is_set():
            try:
                self.client.logout()
            except Exception as exc:  # noqa: BLE001 - offline: forget the device locally anyway
                self.disconnect()
                self.driver.forget_device(self.config.session_id, self.config.jid)
                raise DriverError("logout_incomplete", f"WhatsApp did not confirm the logout: {_clean(str(exc))}; "
                                  "the device was removed locally") from exc
        self.disconnect()
        self.driver.forget_device(self.config.session_id, self.config.jid)

    def pair_phone(self, phone: str, show_push_notification: bool, timeout: float) -> str:
        from neonize.utils.enum import ClientName

        if not self.socket_up.wait(timeout):
            raise DriverError("not_connected", "the WhatsApp socket did not open in time; is the network up?")
        try:
            return self.client.PairPhone(phone, show_push_notification, ClientName.LINUX)
        except Exception as exc:  # noqa: BLE001
            raise DriverError("pair_phone_failed", _clean(str(exc))) from exc

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.client is None or not self.socket_up.is_set():
            raise DriverError("not_connected", "the session is not connected")
        from runner_container import wa_messages  # noqa: PLC0415

        try:
            out = wa_messages.build(self.client, payload, own_jid=self.config.jid, fetch_url=self.driver.fetch_url,
                                    fetch_key=self.driver.fetch_key)
            response = self.client.send_message(out.chat, out.message, link_preview=out.link_preview)
            self.polls.remember_sent(response.ID, payload["to"], self.config.jid, out.message)
        except DriverError:
            raise
        except Exception as exc:  # noqa: BLE001 - MessageBuildError (has a code), NeonizeError...
            code = getattr(exc, "code", None)
            if code:
                raise DriverError(code, _clean(str(exc))) from exc
            from runner_container import wa_chats  # noqa: PLC0415 - whatsmeow's texts -> codes, as for chats

            raise wa_chats.driver_error(exc, "send_failed") from exc
        return {"message_id": response.ID, "timestamp": int(response.Timestamp)}

    # -- chats, contacts and groups (translation in runner_container/wa_chats.py) -------------
    def _live(self) -> Any:
        if self.client is None or not self.socket_up.is_set():
            raise DriverError("not_connected", "the session is not connected")
        return self.client

    def mark_read(self, chat: str, message_ids: list[str], sender: str | None) -> None:
        from neonize.utils.enum import ReceiptType

        from runner_container import wa_chats

        client = self._live()
        # whatsmeow adds the `participant` only in groups; in a 1:1 chat the author is the chat
        try:
            client.mark_read(*message_ids, chat=parse_jid(chat), sender=parse_jid(sender or chat),
                             receipt=ReceiptType.READ)
        except Exception as exc:  # noqa: BLE001 - MarkReadError
            raise wa_chats.driver_error(exc, "mark_read_failed") from exc

    def send_presence(self, state: str, chat: str | None) -> None:
        from runner_container import wa_chats

        client = self._live()
        kind, args = wa_chats.presence_args(state)
        try:
            if kind == "account":
                client.send_presence(*args)
            else:
                client.send_chat_presence(parse_jid(chat or ""), *args)
        except Exception as exc:  # noqa: BLE001 - SendPresenceError
            raise wa_chats.driver_error(exc, "presence_failed") from exc

    def reject_call(self, caller: str, call_id: str) -> None:
        from runner_container import wa_chats

        client = self._live()
        try:  # whatsmeow's RejectCall: the caller's JID exactly as the offer gave it
            client.reject_call(parse_jid(caller), call_id)
        except Exception as exc:  # noqa: BLE001 - RejectCallError
            raise wa_chats.driver_error(exc, "reject_call_failed") from exc

    def check_contacts(self, phones: list[str]) -> list[dict[str, Any]]:
        from runner_container import wa_chats

        client = self._live()
        try:
            answers = client.is_on_whatsapp(*[f"+{phone}" for phone in phones])
        except Exception as exc:  # noqa: BLE001 - IsOnWhatsAppError
            raise wa_chats.driver_error(exc, "check_failed") from exc
        return wa_chats.contacts_json(phones, answers)

    def contact_profile(self, jid: str) -> dict[str, Any]:
        from runner_container import wa_chats

        client = self._live()
        target = parse_jid(jid)
        try:
            users = client.get_user_info(target)
        except Exception as exc:  # noqa: BLE001 - GetUserInfoError
            raise wa_chats.driver_error(exc, "contact_profile_failed") from exc
        try:
            picture = client.get_profile_picture(target).URL or None
        except Exception:  # noqa: BLE001 - no picture, or hidden from us by the contact's privacy settings
            picture = None
        return wa_chats.profile_json(jid, users, picture)

    def list_groups(self) -> list[dict[str, Any]]:
        from runner_container import wa_chats

        client = self._live()
        try:
            groups = client.get_joined_groups()
        except Exception as exc:  # noqa: BLE001 - GetJoinedGroupsError
            raise wa_chats.driver_error(exc, "list_groups_failed") from exc
        return [wa_chats.group_json(group) for group in groups]

    def group_info(self, group_jid: str) -> dict[str, Any]:
        from runner_container import wa_chats

        client = self._live()
        try:
            return wa_chats.group_json(client.get_group_info(parse_jid(group_jid)))
        except Exception as exc:  # noqa: BLE001 - GetGroupInfoError
            raise wa_chats.driver_error(exc, "group_info_failed") from exc

    def create_group(self, name: str, participants: list[str]) -> dict[str, Any]:
        from runner_container import wa_chats

        client = self._live()
        try:
            return wa_chats.group_json(client.create_group(name, [parse_jid(jid) for jid in participants]))
        except Exception as exc:  # noqa: BLE001 - CreateGroupError
            raise wa_chats.driver_error(exc, "create_group_failed") from exc

    def update_participants(self, group_jid: str, action: str, participants: list[str]) -> list[dict[str, Any]]:
        from runner_container import wa_chats

        client = self._live()
        change = wa_chats.participant_change(action)
        try:
            answered = client.update_group_participants(parse_jid(group_jid), [parse_jid(j) for j in participants],
                                                        change)
        except Exception as exc:  # noqa: BLE001 - UpdateGroupParticipantsError
            raise wa_chats.driver_error(exc, "update_participants_failed") from exc
        return wa_chats.participant_results(action, participants, answered)


def _clean(text: str) -> str:
    return " ".join(text.split())[:300] or "unknown error"


class NeonizeDriver(Driver):
    name = "neonize"

    def __init__(self, database_url: str, db: Database, *, media_policy: NetPolicy | None = None,
                 media_store: Any = None, media_max_bytes: int | None = None):
        self.neonize_url = neonize_database_url(database_url)
        self.db = db
        self.devices = DeviceStore(db)
        self.polls = PollStore(db)
        self.media_policy = media_policy or NetPolicy()  # chalicelib.netguard: WEBHOOK_ALLOW_PRIVATE
        self.media_store = media_store
        self.media_max_bytes = media_max_bytes

    def fetch_url(self, url: str, limit: int) -> bytes:
        from runner_container.media_fetch import fetch_media

        return fetch_media(url, limit, policy=self.media_policy)

    def fetch_key(self, key: str, limit: int) -> bytes:
        from runner_container.media_fetch import fetch_stored_media

        return fetch_stored_media(self.media_store, key, min(limit, self.media_max_bytes or limit))

    def client(self, config: SessionConfig, sink: Sink) -> SessionClient:
        return NeonizeClient(self, config, sink)

    def has_device(self, session_id: str, jid: str) -> bool:
        # whatsmeow panics (nil device, the whole process dies) when asked to resume a JID it
        # does not store, so the runner checks first
        return self.devices.has(jid)

    def forget_device(self, session_id: str, jid: str | None) -> None:
        if jid:
            self.devices.forget(jid)
