"""The neonize driver, offline but real: whatsmeow dials WhatsApp through the session's
proxy (a real `pproxy` server on loopback, whose upstream is a dead loopback port, so
nothing leaves the machine), the failed dial becomes `status=error` with a readable
`last_error`, and the runner retries with backoff. whatsmeow's device store lives in
the test database."""
from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest

from devstack.processes import Child, free_port, start_child, wait_http  # noqa: F401
from tests.conftest import session_headers
from tests.support.runner_harness import holders, outbox_events, start_runner, wait_for


class Pproxy:
    def __init__(self, scheme: str, auth: str | None = None):
        self.port = free_port()
        self.dead_port = free_port()  # nothing listens there: the tunnel can never leave loopback
        self.log = tempfile.NamedTemporaryFile(prefix="pproxy-", suffix=".log", delete=False)
        listen = f"{scheme}://127.0.0.1:{self.port}" + (f"#{auth}" if auth else "")
        self.child = start_child("pproxy", [sys.executable, "-m", "pproxy", "-l", listen,
                                            "-r", f"http://127.0.0.1:{self.dead_port}", "-v"],
                                 {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}, "/",
                                 stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: "Serving on" in self.text(), timeout=15, message="pproxy listening")

    def text(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def tunnels(self) -> int:
        return sum(1 for line in self.text().splitlines() if line.rstrip().endswith("-> web.whatsapp.com:443"))

    def stop(self) -> None:
        self.child.stop()
        import os  # noqa: PLC0415

        try:
            os.unlink(self.log.name)
        except OSError:
            pass


@pytest.fixture
def neonize_runner(stack, db, clean_runners):
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
        # sessions other tests left wanting a connection: a neonize runner would dial WhatsApp
        # for them without a proxy, and loopback is the only network tests may use
        conn.execute("UPDATE sessions SET desired_state = 'disconnected'")
    process = start_runner(stack.env, "neonize-runner", WHATSAPP_DRIVER="neonize",
                           RECONNECT_BACKOFF_BASE="300ms", RECONNECT_BACKOFF_MAX="1s")
    wait_for(lambda: holders(db) == {"neonize-runner"}, message="runner holds every slot")
    yield process
    process.stop()


@pytest.mark.parametrize("scheme", ["http", "socks5"])
def test_dial_goes_through_the_session_proxy_fails_readably_and_retries(scheme, api, db, neonize_runner,
                                                                        make_session):
    proxy = Pproxy(scheme, auth="zuser:zsecret")
    try:
        created = make_session(name=f"neonize {scheme}", proxy={
            "enabled": True, "type": scheme, "host": "127.0.0.1", "port": proxy.port,
            "username": "zuser", "password": "zsecret"})
        sid, headers = created["session_id"], session_headers(created)
        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202

        # the proxy authenticated us (the password was decrypted) and saw the tunnel to WhatsApp
        wait_for(lambda: proxy.tunnels() >= 1, timeout=30, message="a tunnel to web.whatsapp.com:443")
        state = wait_for(lambda: (s := api.get(f"/sessions/{sid}/status", headers=headers).json_body)
                         ["status"] == "error" and s, timeout=30, message="status error")
        assert state["last_error"] == "dial_failed"
        assert "dial" in state["status_reason"] and "websocket" in state["status_reason"]
        assert state["desired_state"] == "connected"

        # backoff: the runner dials again by itself, through the proxy again
        wait_for(lambda: proxy.tunnels() >= 3, timeout=30, message="retries through the proxy")
        errors = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.error"][2:] and
                          [e for e in outbox_events(db, sid) if e["event"] == "session.error"], timeout=30)
        attempts = [e["data"]["attempt"] for e in errors]
        assert attempts[:3] == [1, 2, 3]
        assert all(e["data"]["code"] == "dial_failed" and e["data"]["retry_in_seconds"] is not None for e in errors)
        assert api.get(f"/sessions/{sid}/stats", headers=headers).json_body["reconnects"] >= 2

        # whatsmeow created its device store in our database
        with db.connection() as conn:
            tables = {r["t"] for r in conn.execute(
                "SELECT tablename AS t FROM pg_tables WHERE tablename LIKE 'whatsmeow_%'").fetchall()}
        assert {"whatsmeow_device", "whatsmeow_sessions", "whatsmeow_identity_keys"} <= tables

        # disconnect stops the retries for good
        assert api.post(f"/sessions/{sid}/disconnect", headers=headers).status_code == 202
        wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "disconnected",
                 timeout=20)
    finally:
        proxy.stop()


def test_wrong_proxy_password_is_refused_by_the_proxy(api, db, neonize_runner, make_session):
    proxy = Pproxy("http", auth="zuser:right")
    try:
        created = make_session(name="bad proxy auth", auto_reconnect=False, proxy={
            "enabled": True, "type": "http", "host": "127.0.0.1", "port": proxy.port,
            "username": "zuser", "password": "wrong"})
        sid, headers = created["session_id"], session_headers(created)
        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
        state = wait_for(lambda: (s := api.get(f"/sessions/{sid}/status", headers=headers).json_body)
                         ["status"] == "error" and s, timeout=30, message="status error")
        assert state["last_error"] == "dial_failed"
        assert proxy.tunnels() == 0  # the proxy never opened a tunnel for a wrong password
        # auto_reconnect=false: one failure, no retry scheduled
        error = [e for e in outbox_events(db, sid) if e["event"] == "session.error"][0]
        assert error["data"]["retry_in_seconds"] is None
    finally:
        proxy.stop()
