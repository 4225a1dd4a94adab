"""Helpers for the runner tests: start runner processes on free ports, wait for
conditions, talk to the emulator's control API, read the events queue."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib.repositories.placement import PlacementRepository
from devstack import PROJECT_ROOT
from devstack.processes import Child, free_port, start_child


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout:g}s (last: {last!r})")


@dataclass
class RunnerProcess:
    runner_id: str
    child: Child
    emulator_port: int
    metrics_port: int
    log_path: str
    emulator_token: str = ""

    def emulator(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """The emulator's control API, with the runner's X-Emulator-Token."""
        return http_json(method, f"http://127.0.0.1:{self.emulator_port}{path}", body,
                         headers={"X-Emulator-Token": self.emulator_token})

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self) -> None:
        self.child.stop(timeout=20)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def kill(self) -> None:
        self.child.kill()


def start_runner(env: dict[str, str], runner_id: str, **extra: str) -> RunnerProcess:
    emulator_port, metrics_port = free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"{runner_id}-", suffix=".log", delete=False)
    full_env = {**env, "RUNNER_ID": runner_id, "EMULATOR_PORT": str(emulator_port),
                "METRICS_PORT": str(metrics_port), "RUNNER_RECONCILE_INTERVAL": "1s",
                "COMMAND_STALE_AFTER": "1s", "RECONNECT_BACKOFF_BASE": "200ms", "RECONNECT_BACKOFF_MAX": "2s",
                **extra}
    child = start_child(runner_id, [sys.executable, "-m", "runner_container"], full_env, str(PROJECT_ROOT),
                        stdout=log, stderr=subprocess.STDOUT)
    runner = RunnerProcess(runner_id, child, emulator_port, metrics_port, log.name,
                           full_env.get("EMULATOR_TOKEN", ""))
    try:
        wait_for(lambda: _healthy(metrics_port) or not child.alive(), timeout=60, message="runner /healthz")
    except AssertionError:
        child.kill()
        raise AssertionError("runner did not become healthy:\n" + runner.log()[-3000:]) from None
    if not child.alive():
        raise AssertionError("runner exited:\n" + runner.log()[-3000:])
    return runner


def _healthy(port: int) -> bool:
    status, _ = http_json("GET", f"http://127.0.0.1:{port}/healthz")
    return status == 200


def http_json(method: str, url: str, body: dict | None = None, timeout: float = 10,
              headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError):
        return 0, {}
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"raw": raw.decode(errors="replace")}


def slot_owners(db) -> dict[int, str | None]:
    """Placement (migration 0082): slot -> the runner holding it; None when no runner, or a
    stopped one, holds it."""
    with db.connection() as conn:
        return PlacementRepository.holders(conn)


def holders(db) -> set[str | None]:
    """The runners holding slots (None among them while some slot has no live holder)."""
    return set(slot_owners(db).values())


def reset_placement(db) -> None:
    """Every slot unheld: the runners a test starts share them from scratch."""
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")


def session_row(db, session_id: str) -> dict | None:
    with db.connection() as conn:
        return conn.execute("SELECT s.*, r.runner_id, r.qr_code, r.logged_in FROM sessions s LEFT JOIN "
                            "session_runtime r USING (session_id) WHERE s.session_id = %s",
                            (session_id,)).fetchone()


class EventsReader:
    """Reads one session's envelopes from the events queue (others are left for their owners)."""

    def __init__(self, container, session_id: str):
        self.sqs = container.sqs
        self.url = container.queues.events_url
        self.session_id = session_id
        self.seen: list[dict] = []

    def poll(self) -> list[dict]:
        """One pass over the queue. Other sessions' messages stay invisible until the pass
        ends, so each is received once per poll, not once per batch: the queue is shared by
        the whole suite, and receiving a message counts towards its `maxReceiveCount` (5),
        past which SQS moves it to the events DLQ (it sent other tests' retries there)."""
        foreign: list[str] = []
        try:
            while True:
                answer = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                                  VisibilityTimeout=30)
                messages = answer.get("Messages", [])
                for message in messages:
                    envelope = json.loads(message["Body"])
                    if envelope.get("session_id") == self.session_id:
                        self.seen.append(envelope)
                        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
                    else:
                        foreign.append(message["ReceiptHandle"])
                if len(messages) < 10:
                    break
        finally:
            for handle in foreign:  # back to their owners at once
                self.sqs.change_message_visibility(QueueUrl=self.url, ReceiptHandle=handle, VisibilityTimeout=0)
        unique = {e["id"]: e for e in self.seen}
        self.seen = sorted(unique.values(), key=lambda e: e["metadata"]["sequence"])
        return self.seen


def outbox_events(db, session_id: str) -> list[dict]:
    with db.connection() as conn:
        rows = conn.execute("SELECT envelope FROM event_outbox WHERE session_id = %s "
                            "ORDER BY (envelope->'metadata'->>'sequence')::bigint", (session_id,)).fetchall()
    return [r["envelope"] for r in rows]


def env_without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}


os.environ.setdefault("PYTHONUNBUFFERED", "1")


def pair_with_emulator(api: Any, runner: "RunnerProcess", created: dict[str, Any], phone: str,
                       push_name: str | None = "Test Phone") -> None:
    """Connect a session through the API, scan its QR on the emulator as `phone` (with the
    push name WhatsApp would sync; None: none, as whatsmeow has before the sync), and wait
    until the API reports it authenticated."""
    sid = created["session_id"]
    headers = {"Authorization": f"Bearer {created['api_key']}", "Content-Type": "application/json"}
    assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
    wait_for(lambda: runner.emulator("POST", f"/emulator/sessions/{sid}/scan",
                                             {"phone": phone, "push_name": push_name})[0] == 200,
             message="the emulator waits for a scan")
    wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated",
             message="authenticated")


@contextlib.contextmanager
def module_runner(env: dict[str, str], runner_id: str, **extra: str):
    """`sole_runner` for a module-scoped fixture: with a database pool of its own, since the
    `db` fixture lives for one test."""
    from chalicelib.db import Database

    db = Database(env["DATABASE_URL"])
    try:
        with sole_runner(env, db, runner_id, **extra) as process:
            yield process
    finally:
        db.close()


@contextlib.contextmanager
def sole_runner(env: dict[str, str], db: Any, runner_id: str, **extra: str):
    """One runner that holds every slot (placement and runner rows of earlier tests cleared)."""
    reset_placement(db)
    with db.connection() as conn:
        conn.execute("DELETE FROM runners")
    process = start_runner(env, runner_id, **extra)
    try:
        wait_for(lambda: holders(db) == {runner_id}, message="runner holds every slot")
        yield process
    finally:
        process.stop()


def module_paired_session(stack: Any, runner: "RunnerProcess", *, name: str, phone: str, push_name: str) -> dict:
    """One session paired with the emulator for a whole test module: created with the admin key
    through the in-process app (a module fixture cannot use the function-scoped `api`)."""
    import uuid

    from chalice.test import Client

    import app as app_module
    from chalicelib.bootstrap import Container, reset_container
    from chalicelib.config import load_settings
    from tests.conftest import TEST_ADMIN_KEY, session_headers

    reset_container(Container(load_settings(stack.env)))
    admin = {"Authorization": f"Bearer {TEST_ADMIN_KEY}", "Content-Type": "application/json"}
    try:
        with Client(app_module.app, stage_name="local") as client:
            created = json.loads(client.http.post("/sessions", headers=admin, body=json.dumps(
                {"name": name, "session_id": f"t-{uuid.uuid4().hex[:10]}"})).body)
            sid, headers = created["session_id"], session_headers(created)
            assert client.http.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
            wait_for(lambda: runner.emulator("POST", f"/emulator/sessions/{sid}/scan",
                                             {"phone": phone, "push_name": push_name})[0] == 200,
                     message="the emulator waits for a scan")
            wait_for(lambda: json.loads(client.http.get(f"/sessions/{sid}/status", headers=headers).body)["status"]
                     == "authenticated", message="authenticated")
    finally:
        reset_container(None)
    return created


def emulator_activity(runner: "RunnerProcess", session_id: str, kind: str | None = None) -> list[dict]:
    """What the emulator's client of the session was asked, in order (of one kind, if given)."""
    status, body = runner.emulator("GET", f"/emulator/sessions/{session_id}/activity")
    assert status == 200, body
    return [a for a in body["activity"] if kind is None or a["kind"] == kind]


def wait_settings_applied(db: Any, session_id: str, count: int = 1) -> None:
    """Until `count` apply_settings commands of the session succeeded (a behaviour change reached the runner)."""
    def done() -> bool:
        with db.connection() as conn:
            rows = conn.execute("SELECT status FROM commands WHERE session_id = %s AND type = 'apply_settings'",
                                (session_id,)).fetchall()
        return len(rows) >= count and all(r["status"] == "succeeded" for r in rows)
    wait_for(done, message="the runner applied the settings")
