"""Finding 15 (one suspicion): does whatsmeow (neonize) log the proxy URL with its password?

Settled with real dials, offline: neonize connects through a loopback `pproxy` that
requires a username/password (its upstream is a dead loopback port, so nothing leaves
the machine), once bare (Go and Python logs at DEBUG, captured from the subprocess's
stdout/stderr) and once inside our runner (LOG_LEVEL=DEBUG, its whole output captured).
The password never appears: not in the logs, not in the error whatsmeow returns (which
the runner stores as the session's `status_reason` and puts in `session.error`).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import PROJECT_ROOT, session_headers
from tests.support.runner_harness import holders, outbox_events, start_runner, wait_for
from tests.integration.test_neonize_driver import Pproxy

PASSWORD = "Zpw-7f3k-secret"

NEONIZE_DIAL = textwrap.dedent('''
    import logging, os, sys, tempfile, threading
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    from neonize.client import NewClient
    from neonize._binder import ProxySettings
    for name in ("whatsmeow", "whatsmeow.Client", "Whatsmeow.Database", "neonize"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    client = NewClient(os.path.join(tempfile.mkdtemp(), "device.sqlite3"), uuid="logcheck", new_device=True)
    def run():
        try:
            client.connect(ProxySettings(proxy_address=sys.argv[1]))
        except Exception as exc:
            print("DIAL-ERROR", exc, flush=True)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(20)
    try:
        client.stop()
    except Exception:
        pass
    print("DONE", flush=True)
    os._exit(0)
''')


@pytest.mark.parametrize("scheme,password", [("http", PASSWORD), ("socks5", PASSWORD), ("http", PASSWORD + "-wrong"),
                                             ("socks5", PASSWORD + "-wrong")])
def test_neonize_never_logs_the_proxy_password(scheme, password):
    proxy = Pproxy(scheme, auth=f"zuser:{PASSWORD}")
    try:
        url = f"{scheme}://zuser:{password}@127.0.0.1:{proxy.port}"
        done = subprocess.run([sys.executable, "-c", NEONIZE_DIAL, url], capture_output=True, text=True,
                              timeout=60, cwd=str(PROJECT_ROOT))
        output = done.stdout + done.stderr
        assert "DONE" in output and "DIAL-ERROR" in output, output[-2000:]
        # neonize's DEBUG log was captured (whatsmeow's "Dialing wss://..." line usually is too)
        assert "Attempting to connect to the WhatsApp servers" in output or "Dialing wss://" in output
        if password == PASSWORD:
            assert proxy.tunnels() >= 1  # the password was used: the proxy opened the tunnel
        assert PASSWORD not in output, output
        assert "Zpw-7f3k" not in output
    finally:
        proxy.stop()


@pytest.fixture
def debug_neonize_runner(stack, db, clean_runners):
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
        conn.execute("UPDATE sessions SET desired_state = 'disconnected'")  # nothing else may dial
    process = start_runner(stack.env, "neonize-logcheck", WHATSAPP_DRIVER="neonize", LOG_LEVEL="DEBUG",
                           RECONNECT_BACKOFF_BASE="300ms", RECONNECT_BACKOFF_MAX="1s")
    wait_for(lambda: holders(db) == {"neonize-logcheck"}, message="runner holds every slot")
    yield process
    process.stop()


def test_the_runner_never_logs_or_stores_the_proxy_password(api, db, make_session, debug_neonize_runner):
    proxy = Pproxy("http", auth=f"zuser:{PASSWORD}")
    try:
        created = make_session(name="log check", proxy={"enabled": True, "type": "http", "host": "127.0.0.1",
                                                        "port": proxy.port, "username": "zuser",
                                                        "password": PASSWORD})
        sid, headers = created["session_id"], session_headers(created)
        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
        wait_for(lambda: proxy.tunnels() >= 2, timeout=30, message="dials through the proxy (and a retry)")
        state = wait_for(lambda: (s := api.get(f"/sessions/{sid}/status", headers=headers).json_body)
                         ["status"] == "error" and s, timeout=30, message="status error")
        api.post(f"/sessions/{sid}/disconnect", headers=headers)
        log = debug_neonize_runner.log()
        assert "\"type\":\"connect\"" in log  # the output was captured (whatsmeow is kept at WARNING there)
        assert PASSWORD not in log
        assert PASSWORD not in json.dumps(state)
        assert PASSWORD not in json.dumps(outbox_events(db, sid))
    finally:
        proxy.stop()
