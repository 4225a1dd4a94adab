"""One driver under test, as the contract suite (`test_contract.py`) sees it: the driver,
clients whose sink records every event, a stored device, and what the driver can show
offline. The emulator runs whole; neonize runs for real up to what needs WhatsApp's
servers (no route from these machines): its dials go through loopback proxies only, and
never without a proxy (whatsmeow would look web.whatsapp.com up in DNS)."""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from devstack.processes import free_port
from runner_container.drivers.base import Driver, SessionClient, SessionConfig


@dataclass
class Recorder:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        with self.cond:
            self.events.append((kind, data))
            self.cond.notify_all()

    def kinds(self) -> list[str]:
        with self.cond:
            return [kind for kind, _ in self.events]

    def wait(self, kind: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for seen, data in self.events:
                    if seen == kind:
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind!r} event within {timeout:g}s; saw {self.kinds()}")
                self.cond.wait(min(left, 0.5))


class Kit:
    name = "driver"
    driver: Driver
    # whether the client can reach "WhatsApp": the emulator is its own; neonize has no route offline
    reaches_whatsapp = False

    def __init__(self) -> None:
        self.clients: list[SessionClient] = []

    def client(self, session_id: str, *, jid: str | None = None, proxy: str | None = None) -> tuple[SessionClient, Recorder]:
        recorder = Recorder()
        client = self.driver.client(SessionConfig(session_id, jid, proxy), recorder)
        self.clients.append(client)
        return client, recorder

    def store_device(self, session_id: str) -> str:
        raise NotImplementedError

    def close(self) -> None:
        for client in self.clients:
            try:
                client.disconnect()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        self.driver.stop()


def closed_proxy() -> str:
    """A proxy address where nothing listens: the dial is refused at once, on loopback."""
    return f"http://127.0.0.1:{free_port()}"


def device_jid() -> str:
    return f"55119{secrets.randbelow(10**8):08d}:{secrets.randbelow(80) + 10}@s.whatsapp.net"


class EmulatorKit(Kit):
    name = "emulator"
    reaches_whatsapp = True

    def __init__(self, db: Any) -> None:
        super().__init__()
        from runner_container.drivers.emulator import EmulatorDriver

        self.driver = EmulatorDriver(db, token=secrets.token_urlsafe(16), port=free_port(), qr_rotate=60.0,
                                     dial_timeout=3.0)
        self.driver.start()

    def store_device(self, session_id: str, push_name: str | None = "Contract") -> str:
        jid = device_jid()
        self.driver.store_device(session_id, jid, push_name)  # type: ignore[attr-defined]
        return jid


class NeonizeKit(Kit):
    name = "neonize"

    def __init__(self, database_url: str, db: Any) -> None:
        super().__init__()
        from runner_container.drivers.neonize_driver import NeonizeDriver

        self.db = db
        self.driver = NeonizeDriver(database_url, db)

    def ensure_store(self) -> None:
        """whatsmeow creates its tables on its first dial: one refused dial, on loopback."""
        with self.db.connection() as conn:
            if conn.execute("SELECT to_regclass('whatsmeow_device') IS NOT NULL AS ok").fetchone()["ok"]:
                return
        client, recorder = self.client(f"store-{secrets.token_hex(4)}", proxy=closed_proxy())
        client.connect()
        recorder.wait("retryable")
        client.disconnect()

    def store_device(self, session_id: str) -> str:
        """A device row in whatsmeow's own table, as pairing leaves it (keys of the right
        sizes, random: nothing here ever talks to WhatsApp with them)."""
        self.ensure_store()
        jid = device_jid()
        key = lambda n: os.urandom(n)  # noqa: E731
        with self.db.connection() as conn:
            conn.execute(
                """
                INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key, signed_pre_key,
                    signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig,
                    adv_account_sig_key, adv_device_sig, platform, business_name, push_name, lid_migration_ts,
                    companion_meta_nonce)
                VALUES (%s, %s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s, 'android', '', 'Contract', 0, '')
                """, (jid, secrets.randbelow(2**31), key(32), key(32), key(32), key(64), key(32), b"\x08\x01",
                      key(64), key(32), key(64)))
        return jid
