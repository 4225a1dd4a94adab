"""The whole local stack for the fault bench, started through devstack as `make run` does,
with handles to break each part: two runner processes (SIGKILL, restart), the embedded
PostgreSQL (`pg_ctl stop -m immediate`, start), a LocalStack of its own (stop, start: its
queues come back missing and `redeploy_if_missing` deploys them again, as `make run`'s
loop does), the API (`chalice local`) and the SQS bridge.

Everything lives under a data dir of its own (database, LocalStack state, logs, the
emulator's wire log) with its own queue prefix, so it runs beside `make run` and the
test suite and leaves nothing behind. The LocalStack on 4566 is never touched: the bench
starts its own on a free port (tests pass `localstack_endpoint` to reuse the suite's one
when they do not break LocalStack).
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from devstack import offline_env
from devstack.localstack import ensure_localstack
from devstack.processes import Child, free_port, wait_http
from devstack.stack import LocalStackEnvironment

RUNNER_IDS = ("runner-a", "runner-b")


class FaultStack:
    def __init__(self, *, localstack_endpoint: str | None = None,
                 extra_env: dict[str, str] | None = None, log: Callable[[str], None] = print,
                 keep_dir: bool = False):
        self.log = log
        self.keep_dir = keep_dir
        self.dir = Path(tempfile.mkdtemp(prefix="zemeow-faults-"))
        self.own_localstack = localstack_endpoint is None
        self.localstack_port = free_port() if self.own_localstack else 0
        endpoint = localstack_endpoint or f"http://127.0.0.1:{self.localstack_port}"
        self.admin_key = "zadm_faults_" + secrets.token_urlsafe(24)
        self.emulator_token = secrets.token_urlsafe(24)
        self.wire_log = self.dir / "wire.jsonl"
        self.api_port = free_port()
        base = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "QUEUE_PREFIX", "MEDIA_BUCKET", "SERVER_PORT", "POSTGRES_HOST")}
        env = {
            **base,
            "DATA_DIR": str(self.dir),
            "QUEUE_PREFIX": f"zf{os.getpid()}{secrets.token_hex(2)}",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": base.get("AWS_DEFAULT_REGION", "us-east-1"),
            "ADMIN_API_KEY": self.admin_key,
            "ENCRYPTION_KEY": secrets.token_urlsafe(32),
            "WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
            "WHATSAPP_DRIVER": "emulator",
            "EMULATOR_TOKEN": self.emulator_token,
            "EMULATOR_WIRE_LOG": str(self.wire_log),
            "API_RATE_LIMIT": "1000000/1m", "API_ADMIN_RATE_LIMIT": "1000000/1m",
            "LOG_LEVEL": "WARNING",
            "SERVER_PORT": str(self.api_port),
            **(extra_env or {}),
        }
        self.stack = LocalStackEnvironment(offline_env(env), database_name="zemeow_faults", log=log)
        self.runners: dict[str, Child] = {}
        self.killed_at: dict[str, float] = {}  # runner id -> its last SIGKILL (epoch seconds)
        self.ports: dict[str, tuple[int, int]] = {rid: (free_port(), free_port()) for rid in RUNNER_IDS}
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.redeploys = 0

    # -- start / stop -------------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        self.stack.start_database()
        self.stack.migrate()
        self.stack.start_localstack()
        self.stack.deploy_messaging()
        self.stack.start_api(self.api_port, stdout=self._logfile("api"))
        self.stack.start_bridge(stdout=self._logfile("bridge"))
        for rid in RUNNER_IDS:
            self.start_runner(rid)
        wait_http(f"{self.api_url}/health", timeout=60, accept=lambda s: s == 200)
        self.wait_balanced()
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="redeploy-watch")
        self._watcher.start()

    def wait_balanced(self, timeout: float = 60.0) -> None:
        """Until every slot is held and each live runner holds its share. The first runner
        up takes every slot and hands some over once the second is seen: sessions paired
        meanwhile were connected on both (a QR on the new holder while the old one took the
        scan: seen once in a full-scale run of scenario 3, a session never logged in)."""
        import psycopg  # noqa: PLC0415

        from chalicelib.placement import SLOTS  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.env["DATABASE_URL"], connect_timeout=3) as conn:
                    held = [r for (r,) in conn.execute("SELECT runner_id FROM slot_placements")]
            except psycopg.Error:
                held = []
            live = self.live_runners()
            if live and len(held) == SLOTS and all(held.count(rid) >= SLOTS // len(live) - 2 for rid in live):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the slots were not shared by {live} within {timeout:g}s")
            time.sleep(0.25)

    def _watch(self) -> None:
        """What `make run`'s loop does every few seconds: redeploy the stacks if their queues vanished."""
        while not self._watch_stop.wait(2.0):
            try:
                if self.stack.redeploy_if_missing():
                    self.redeploys += 1
            except Exception as exc:  # noqa: BLE001 - tried again on the next round
                self.log(f"redeploy failed: {exc}")

    def stop(self) -> None:
        self._watch_stop.set()
        for child in self.runners.values():
            child.stop()
        self.runners.clear()
        try:
            self.stack.stop(delete_queues=not self.own_localstack)
        finally:
            if not self.keep_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _logfile(self, name: str) -> Any:
        return open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it

    # -- runners ------------------------------------------------------------------------
    def start_runner(self, rid: str, wait: bool = True) -> Child:
        emulator_port, metrics_port = self.ports[rid]
        child = self.stack.start_runner(extra_env={"RUNNER_ID": rid, "EMULATOR_PORT": str(emulator_port),
                                                   "METRICS_PORT": str(metrics_port)},
                                        stdout=self._logfile(rid))
        self.stack.children.remove(child)  # killed and restarted here, not by the stack
        self.runners[rid] = child
        if wait:
            wait_http(f"http://127.0.0.1:{metrics_port}/healthz", timeout=60, accept=lambda s: s == 200,
                      child=child)
        return child

    def kill_runner(self, rid: str) -> None:
        self.killed_at[rid] = time.time()
        self.runners.pop(rid).kill()

    def emulator_url(self, rid: str) -> str:
        return f"http://127.0.0.1:{self.ports[rid][0]}"

    def live_runners(self) -> list[str]:
        return [rid for rid, child in self.runners.items() if child.alive()]

    # -- PostgreSQL ---------------------------------------------------------------------
    def stop_database(self) -> None:
        """`pg_ctl stop -m immediate`: every backend dies at once, no checkpoint (a crash)."""
        from pgserver._commands import pg_ctl  # noqa: PLC0415 - dev dependency

        server = self.stack.embedded
        pg_ctl(["-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start_database(self) -> None:
        server = self.stack.embedded
        uri = server.get_uri()
        with server._lock:
            server.ensure_postgres_running()
        if server.get_uri() != uri:
            raise RuntimeError(f"PostgreSQL came back elsewhere: {server.get_uri()} (was {uri})")

    # -- LocalStack ---------------------------------------------------------------------
    def stop_localstack(self) -> None:
        if not self.own_localstack:
            raise RuntimeError("this stack shares a LocalStack: it must not stop it")
        assert self.stack.localstack is not None
        self.stack.localstack.stop()

    def start_localstack(self) -> None:
        """A fresh LocalStack on the same port (no state: the queues are missing until redeployed)."""
        shutil.rmtree(self.dir / "localstack" / "tmp", ignore_errors=True)
        self.stack.localstack = ensure_localstack(self.env["AWS_ENDPOINT_URL"], self.dir / "localstack",
                                                  log=self.log)

    def wait_redeployed(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        before = self.redeploys
        while self.redeploys == before and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.redeploys == before:
            raise RuntimeError("the stacks were not redeployed after LocalStack came back")
