"""The emulator driver: a stand-in for WhatsApp, for demos, tests and benchmarks.

It behaves like whatsmeow seen from the session actor: `connect()` either restores the
stored device (connected at once, no QR) or emits QR codes of whatsmeow's shape
(`ref,noiseKey,identityKey,advSecret`), rotating every `qr_rotate` seconds until a scan.
Its device store is the `emulator_devices` table, so a paired session survives a
runner restart and failover exactly as whatsmeow's device rows do.

It refuses and fails where whatsmeow does and the code handles it, so a pipeline test
through the emulator means what it says:
- a session with a proxy dials through it (HTTP CONNECT or SOCKS5, credentials and all) to
  the emulator's own listener, which plays `web.whatsapp.com:443`; a proxy that refuses,
  rejects the credentials or does not answer within `dial_timeout` ends the dial as
  neonize's does: `retryable` {code: dial_failed, "failed to dial whatsapp web websocket: ..."};
- account presence without a push name (none given at scan) is refused as whatsmeow's
  `ErrNoPushName` (`push_name_missing`);
- a logout while WhatsApp does not answer (`/unreachable`) removes the device locally and
  raises `logout_incomplete`;
- nothing arrives that nobody sent: a receipt comes only when the test plays the other
  phone (`/receipt`), never by itself on a send.

The control API (`emulator_api.py`, loopback only, `EMULATOR_PORT`, every request with
`X-Emulator-Token`) plays the phone and the network; chats, contacts and groups follow the
fixed rules of `emulator_chats.py`.
Group administration, the profile, privacy and the blocklist follow `emulator_account.py`.

What arrives from "other phones" (messages, edits, revokes, reactions, polls and votes,
receipts, group changes) is built as neonize's protobuf events and translated by the
neonize driver's own code (`emulator_inbound.py`).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chalicelib.db import Database
from chalicelib.errors import ConfigError
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.repositories.devices import EmulatorDeviceStore
from chalicelib.repositories.polls import PollStore
from runner_container.drivers.base import Driver, DriverError, SessionClient, SessionConfig, Sink
from runner_container.drivers.emulator_account import EmulatorAccountCalls
from runner_container.drivers.emulator_api import _handler
from runner_container.drivers.emulator_calls import EmulatorCalls
from runner_container.drivers.emulator_chats import EmulatorChats
from runner_container.drivers.emulator_inbound import EmulatorOtherPhones
from runner_container.drivers.emulator_rules import _without_credentials, fake_message_id, fake_qr
from runner_container.drivers.emulator_sent import sent_fields, sent_poll
from runner_container.poll_memory import SessionPolls
from runner_container.translate_groups import NameTracker

PAIR_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # whatsmeow's linking-code alphabet (no 0, I, O, U)


class EmulatorClient(EmulatorOtherPhones, EmulatorAccountCalls, EmulatorCalls, EmulatorChats, SessionClient):
    def __init__(self, driver: "EmulatorDriver", config: SessionConfig, sink: Sink):
        self.driver = driver
        self.config = config
        self.sink = sink
        self.state = "idle"  # idle | dialing (through a proxy) | waiting_scan | connected
        self.qr_code: str | None = None
        self.pairing: dict[str, Any] | None = None
        self.outbox: list[dict[str, Any]] = []
        self.jid: str | None = config.jid
        self.push_name: str | None = None
        self.unreachable = False  # WhatsApp does not answer requests on the socket
        self.dialed: list[str] = []  # proxies this client dialed through (scheme://host:port), for tests
        self._lock = threading.RLock()
        self._qr_timer: threading.Timer | None = None
        self._generation = 0
        self.polls = SessionPolls(driver.polls, config.session_uid)
        self.names = NameTracker()

    # -- SessionClient ------------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.state = "dialing"
        if not self.config.proxy_url:
            self._login(generation)
            return
        # as neonize: the dial runs on its own thread, a failure arrives through the sink
        threading.Thread(target=self._dial_then_login, args=(generation,), daemon=True,
                         name=f"emulator-dial-{self.config.session_id}").start()

    def _dial_then_login(self, generation: int) -> None:
        problem = self._dial(self.config.proxy_url or "")
        if problem is not None:
            with self._lock:
                if generation != self._generation:
                    return
                self.state = "idle"
            self.sink("retryable", {"code": "dial_failed",
                                    "message": f"failed to dial whatsapp web websocket: {problem}"})
            return
        self._login(generation)

    def _dial(self, proxy_url: str) -> str | None:
        """Open a tunnel through the proxy to the emulator's listener (its `web.whatsapp.com`);
        None when the proxy carried it, else why not (never the password)."""
        from python_socks.sync import Proxy  # noqa: PLC0415

        try:
            sock = Proxy.from_url(proxy_url).connect(dest_host=self.driver.server_host, dest_port=self.driver.port,
                                                     timeout=self.driver.dial_timeout)
        except Exception as exc:  # noqa: BLE001 - ProxyError, ProxyTimeoutError, OSError: the dial failed
            return (" ".join(str(exc).split())[:200] or exc.__class__.__name__).replace(proxy_url, "<proxy>")
        sock.close()
        with self._lock:
            self.dialed.append(_without_credentials(proxy_url) or "")
        return None

    def _login(self, generation: int) -> None:
        device = self.driver.load_device(self.config.session_id)
        with self._lock:
            if generation != self._generation:
                return
            if device is not None:
                self.state = "connected"
                jid = device["jid"]
                self.jid = jid
                self.push_name = device.get("push_name")
            else:
                self.state = "waiting_scan"
                jid = None
        if jid:
            self.sink("connected", {"jid": jid})
        else:
            self._emit_qr(generation)

    def _emit_qr(self, generation: int) -> None:
        with self._lock:
            if self.state != "waiting_scan" or generation != self._generation:
                return
            self.qr_code = fake_qr()
            code = self.qr_code
            self._qr_timer = threading.Timer(self.driver.qr_rotate, self._emit_qr, args=(generation,))
            self._qr_timer.daemon = True
            self._qr_timer.start()
        self.sink("qr", {"code": code, "timeout": self.driver.qr_rotate})

    def _stop_timers(self) -> None:
        if self._qr_timer is not None:
            self._qr_timer.cancel()
            self._qr_timer = None

    def disconnect(self) -> None:
        with self._lock:
            self._generation += 1
            self.state = "idle"
            self.qr_code = None
            self.pairing = None
            self._stop_timers()

    def logout(self) -> None:
        with self._lock:
            unconfirmed = self.state == "connected" and self.unreachable
        self.disconnect()
        self.driver.forget_device(self.config.session_id, None)
        if unconfirmed:  # neonize: Logout failed, the device is removed locally anyway
            raise DriverError("logout_incomplete", "WhatsApp did not confirm the logout: context deadline "
                              "exceeded; the device was removed locally")

    def pair_phone(self, phone: str, show_push_notification: bool, timeout: float) -> str:
        with self._lock:
            if self.state == "connected":
                raise DriverError("already_paired", "the session is already paired")
            if self.state != "waiting_scan":  # as neonize: no open socket, no pairing code
                raise DriverError("not_connected", "the WhatsApp socket is not open (the session is not connecting)")
            raw = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(8))
            self.pairing = {"phone": phone, "code": raw}
        return f"{raw[:4]}-{raw[4:]}"

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        from runner_container.wa_messages import MESSAGE_TYPES  # noqa: PLC0415

        to = str(payload.get("to", ""))
        with self._lock:
            if self.state != "connected":
                raise DriverError("not_connected", "the session is not connected")
        kind = payload.get("type", "text")
        if kind not in MESSAGE_TYPES:  # as wa_messages.build refuses it for neonize
            raise DriverError("unsupported_type", f"message type '{kind}' is not supported")
        media = self._media(payload)  # fetched as the neonize driver does: capped, SSRF-guarded
        with self._lock:
            shown = {k: v for k, v in payload.items() if k != "media_base64"}
            message = {"message_id": fake_message_id(), "to": to, "type": payload.get("type", "text"),
                       "text": payload.get("text"), "timestamp": int(time.time()),
                       "received_at": time.time(),  # when "WhatsApp" got it: benchmarks time API->driver
                       "payload": shown, **media, **sent_fields(payload)}
            self.outbox.append(message)
            if len(self.outbox) > 1000:
                del self.outbox[:-1000]
        self.polls.remember(sent_poll(payload, message["message_id"], self.jid))
        self.driver.on_wire(self.config.session_id, message)
        self._log(self.driver.chat_state(self.config.session_id), "message", message_id=message["message_id"], to=to)
        return {"message_id": message["message_id"], "timestamp": message["timestamp"]}

    def _media(self, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("type") not in ("image", "video", "audio", "document", "sticker"):
            return {}
        from runner_container.media_fetch import fetch_media  # noqa: PLC0415
        from runner_container.wa_messages import MessageBuildError, media_bytes  # noqa: PLC0415

        try:
            data = media_bytes(payload, lambda url, limit: fetch_media(
                url, limit, policy=self.driver.media_policy), self.driver.fetch_key)
        except MessageBuildError as exc:
            raise DriverError(exc.code, exc.message) from exc
        return {"media_size": len(data), "media_sha256": hashlib.sha256(data).hexdigest()}

    # -- the phone and the network (control API) ----------------------------------------
    def scan(self, phone: str | None, push_name: str | None) -> str:
        with self._lock:
            if self.state != "waiting_scan":
                raise DriverError("not_waiting_for_scan", f"the session is {self.state}, not waiting for a scan")
            if self.pairing and not phone:
                phone = self.pairing["phone"]
            phone = phone or "5511" + "".join(secrets.choice("0123456789") for _ in range(9))
            jid = f"{phone}:{secrets.randbelow(90) + 10}@s.whatsapp.net"
            self.jid = jid
            self.push_name = push_name or None
            self.state = "connected"
            self.qr_code = None
            self.pairing = None
            self._stop_timers()
        self.driver.store_device(self.config.session_id, jid, push_name)
        self.sink("paired", {"jid": jid, "business_name": None, "platform": "android"})
        self.sink("connected", {"jid": jid})
        return jid

    def drop(self) -> None:
        with self._lock:
            was = self.state
            self._generation += 1
            self.state = "idle"
            self._stop_timers()
        if was != "idle":
            self.sink("disconnected", {"reason": "network"})

    def fail(self, code: str) -> None:
        """Play WhatsApp refusing the session, through the same translation as real events."""
        from runner_container.translate import translate_failure

        kind, data = translate_failure(code)
        with self._lock:
            if self.state == "idle":
                raise DriverError("not_connected", "the session is not connected")
            self._generation += 1
            self.state = "idle"
            self._stop_timers()
        if kind == "logged_out":
            self.driver.forget_device(self.config.session_id, None)
        self.sink(kind, data)

    def view(self) -> dict[str, Any]:
        with self._lock:
            return {"session_id": self.config.session_id, "state": self.state, "qr_code": self.qr_code,
                    "pairing_pending": self.pairing is not None, "sent": len(self.outbox),
                    "proxy": _without_credentials(self.config.proxy_url), "dialed_through": list(self.dialed),
                    "push_name": self.push_name, "unreachable": self.unreachable}


class EmulatorDriver(Driver):
    name = "emulator"

    server_host = "127.0.0.1"  # the emulator's listener plays web.whatsapp.com: dials through a proxy end here

    def __init__(self, db: Database, *, token: str | None, port: int = 8081, qr_rotate: float = 20.0,
                 dial_timeout: float = 10.0, media_policy: NetPolicy | None = None, media_store: Any = None,
                 media_max_bytes: int | None = None, wire_log: Path | None = None):
        if not token:
            raise ConfigError(["EMULATOR_TOKEN is required when WHATSAPP_DRIVER=emulator: its control API "
                               "can pair any session, so it never answers without the token "
                               "(make run generates one into .zemeow/local.env)"])
        self.token = token
        self.db = db
        self.devices = EmulatorDeviceStore(db)
        self.polls = PollStore(db)
        self.media_policy = media_policy or NetPolicy()  # chalicelib.netguard: WEBHOOK_ALLOW_PRIVATE
        self.media_store = media_store
        self.media_max_bytes = media_max_bytes
        self.port = port
        self.qr_rotate = qr_rotate
        self.dial_timeout = dial_timeout
        self.clients: dict[str, EmulatorClient] = {}
        self.chats: dict[str, dict[str, Any]] = {}  # session_id -> {"groups": {...}, "activity": [...]}
        self.opened: dict[str, int] = {}  # session_id -> clients opened (emulator_calls.py)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        # EMULATOR_WIRE_LOG: what went out on the "network", one JSON line per message, appended
        # with one write(2) on an O_APPEND descriptor (runners may share the file; a SIGKILL
        # after the write keeps the line): the fault bench counts executions from it
        self._wire_fd = os.open(wire_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if wire_log else None

    def on_wire(self, session_id: str, message: dict[str, Any]) -> None:
        if self._wire_fd is None:
            return
        line = {"session_id": session_id, "message_id": message["message_id"], "to": message["to"],
                "text": message.get("text"), "at": message["received_at"], "pid": os.getpid()}
        os.write(self._wire_fd, (json.dumps(line) + "\n").encode())

    def fetch_key(self, key: str, limit: int) -> bytes:
        from runner_container.media_fetch import fetch_stored_media  # noqa: PLC0415

        return fetch_stored_media(self.media_store, key, min(limit, self.media_max_bytes or limit))

    def client(self, config: SessionConfig, sink: Sink) -> SessionClient:
        client = EmulatorClient(self, config, sink)
        with self._lock:
            self.clients[config.session_id] = client
            self.opened[config.session_id] = self.opened.get(config.session_id, 0) + 1
        return client

    def release(self, session_id: str, client: SessionClient) -> None:
        with self._lock:
            if self.clients.get(session_id) is client:
                del self.clients[session_id]

    def chat_state(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            return self.chats.setdefault(session_id, {"groups": {}, "activity": []})

    def add_group(self, session_id: str, name: str, *, owner: str, members: list[str],
                  admins: list[str]) -> dict[str, Any]:
        jid = "120363" + "".join(secrets.choice("0123456789") for _ in range(12)) + "@g.us"
        group = {"jid": jid, "name": name, "topic": None, "owner": owner, "created": int(time.time()),
                 "members": list(dict.fromkeys(members)), "admins": set(admins)}
        with self._lock:
            self.chat_state(session_id)["groups"][jid] = group
        return group

    def find(self, session_id: str) -> EmulatorClient | None:
        with self._lock:
            return self.clients.get(session_id)

    # -- device store -------------------------------------------------------------------
    def load_device(self, session_id: str) -> dict[str, Any] | None:
        return self.devices.load(session_id)

    def store_device(self, session_id: str, jid: str, push_name: str | None) -> None:
        self.devices.store(session_id, jid, push_name)

    def has_device(self, session_id: str, jid: str) -> bool:
        return self.load_device(session_id) is not None

    def forget_device(self, session_id: str, jid: str | None) -> None:
        self.devices.forget(session_id)

    # -- control API --------------------------------------------------------------------
    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="emulator-api", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def info(self) -> dict[str, Any]:
        return {"emulator_port": self.port}
