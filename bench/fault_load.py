"""Steady load for the fault bench: sends through the API to paired emulator sessions and
inbound messages injected at the emulator, at fixed rates, each tagged so that the
counting (bench/fault_count.py) finds its own rows.

A send is made as a careful client makes it: with an idempotency key, retried on a 5xx,
a timeout or a refused connection (the same key: the API answers the first command, so
nothing is sent twice), until it is answered 2xx/4xx or the client gives up.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.fault_receiver import FaultReceiver
from bench.fault_stack import FaultStack

RECIPIENT = "5511777770000"


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """(status, JSON body); status 0 when nothing answered (refused, timed out)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (urllib.error.URLError, OSError):
        return 0, {}
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {}


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - a part that is down answers nothing yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:g}s")
        time.sleep(interval)


@dataclass
class Session:
    sid: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def pair_sessions(stack: FaultStack, receiver: FaultReceiver, count: int) -> list[Session]:
    """Create `count` sessions through the API with a webhook on the receiver, pair each on the
    emulator of whichever runner holds it, and wait until the API says authenticated."""
    admin = {"Authorization": f"Bearer {stack.admin_key}"}
    sessions = []
    for i in range(count):
        sid = f"f{i}-{uuid.uuid4().hex[:8]}"
        status, body = http("POST", f"{stack.api_url}/sessions", {
            "name": f"fault bench {i}", "session_id": sid, "webhook": {"url": receiver.url(f"/s/{sid}")}},
            headers=admin)
        if status != 201:
            raise RuntimeError(f"creating a session answered {status}: {body}")
        session = Session(sid, body["api_key"])
        if http("POST", f"{stack.api_url}/sessions/{sid}/connect", headers=session.headers)[0] != 202:
            raise RuntimeError(f"connect {sid} was refused")
        sessions.append(session)
    for n, session in enumerate(sessions):
        holder = wait_until(lambda s=session: holder_of(stack, s.sid, "waiting_scan"), 60, f"{session.sid} QR")
        status, body = http("POST", f"{stack.emulator_url(holder)}/emulator/sessions/{session.sid}/scan",
                            {"phone": f"55119{n:08d}", "push_name": "bench"}, headers=emulator_headers(stack))
        if status != 200:
            raise RuntimeError(f"scan answered {status}: {body}")
    for session in sessions:
        wait_until(lambda s=session: http("GET", f"{stack.api_url}/sessions/{s.sid}/status",
                                          headers=s.headers)[1].get("status") == "authenticated",
                   60, f"{session.sid} authenticated")
    return sessions


def emulator_headers(stack: FaultStack) -> dict[str, str]:
    return {"X-Emulator-Token": stack.emulator_token}


def holder_of(stack: FaultStack, sid: str, state: str | None = "connected") -> str | None:
    """The live runner whose emulator holds `sid` (in `state`, if given)."""
    for rid in stack.live_runners():
        status, body = http("GET", f"{stack.emulator_url(rid)}/emulator/sessions/{sid}",
                            headers=emulator_headers(stack), timeout=3)
        if status == 200 and (state is None or body.get("state") == state):
            return rid
    return None


@dataclass
class ApiStats:
    requests: int = 0
    server_errors: int = 0  # 5xx answers
    no_answer: int = 0  # refused or timed out
    throttled: int = 0  # 429
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: int) -> None:
        with self.lock:
            self.requests += 1
            if status >= 500:
                self.server_errors += 1
            elif status == 0:
                self.no_answer += 1
            elif status == 429:
                self.throttled += 1


class Load:
    """Sends and inbound messages at fixed rates until `stop()`; `burst(n)` adds n sends at once."""

    def __init__(self, stack: FaultStack, sessions: list[Session], tag: str, *, send_rate: float,
                 inbound_rate: float, give_up_after: float = 120.0, workers: int = 16):
        self.stack, self.sessions, self.tag = stack, sessions, tag
        self.send_rate, self.inbound_rate = send_rate, inbound_rate
        self.give_up_after = give_up_after
        self.stats = ApiStats()
        self.accepted: dict[str, str] = {}  # text -> command id (answered 2xx)
        self.refused: dict[str, int] = {}  # text -> 4xx status
        self.abandoned: list[str] = []  # never answered within give_up_after
        self.inbound: dict[str, str] = {}  # text -> session id (the emulator took it)
        self.inbound_at: dict[str, float] = {}  # text -> when the emulator took it (epoch seconds)
        self.inbound_runner: dict[str, str] = {}  # text -> the runner whose emulator took it
        self.inbound_missed = 0  # no runner held the session at that moment (not sent)
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix=f"load-{tag}")
        self.stopping = threading.Event()
        self.sent = 0
        self.injected = 0
        self.threads: list[threading.Thread] = []
        self.holders: dict[str, str] = {}

    # -- control ------------------------------------------------------------------------
    def start(self) -> "Load":
        for target, rate in ((self._next_send, self.send_rate), (self._next_inbound, self.inbound_rate)):
            if rate > 0:
                thread = threading.Thread(target=self._pace, args=(target, rate), daemon=True)
                thread.start()
                self.threads.append(thread)
        return self

    def _pace(self, target: Any, rate: float) -> None:
        started, n = time.monotonic(), 0
        while not self.stopping.is_set():
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                return
            self.pool.submit(target)
            n += 1

    def burst(self, count: int) -> None:
        for _ in range(count):
            self.pool.submit(self._next_send)

    def stop(self, wait: bool = True) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        self.pool.shutdown(wait=wait)

    # -- sends --------------------------------------------------------------------------
    def _next_send(self) -> None:
        with self.lock:
            n = self.sent
            self.sent += 1
        self.send(self.sessions[n % len(self.sessions)], f"{self.tag}-{n}")

    def send(self, session: Session, text: str) -> None:
        deadline = time.monotonic() + self.give_up_after
        url = f"{self.stack.api_url}/sessions/{session.sid}/messages"
        body = {"to": RECIPIENT, "type": "text", "text": text, "idempotency_key": text}
        while True:
            status, answer = http("POST", url, body, headers=session.headers, timeout=15)
            self.stats.add(status)
            if 200 <= status < 300:
                with self.lock:
                    self.accepted[text] = answer.get("command_id", "")
                return
            if 400 <= status < 500 and status not in (408, 429):
                with self.lock:
                    self.refused[text] = status
                return
            if time.monotonic() > deadline:
                with self.lock:
                    self.abandoned.append(text)
                return
            time.sleep(1.0)  # a careful client backs off, then retries with the same key

    # -- inbound ------------------------------------------------------------------------
    def _next_inbound(self) -> None:
        with self.lock:
            n = self.injected
            self.injected += 1
        session = self.sessions[n % len(self.sessions)]
        text = f"{self.tag}-in-{n}"
        for _ in range(2):
            rid = self.holders.get(session.sid) or holder_of(self.stack, session.sid)
            if rid is None:
                break
            status, _ = http("POST", f"{self.stack.emulator_url(rid)}/emulator/sessions/{session.sid}/inbound",
                             {"from": "5511888880000", "text": text}, headers=emulator_headers(self.stack),
                             timeout=5)
            if status == 200:
                self.holders[session.sid] = rid
                with self.lock:
                    self.inbound[text] = session.sid
                    self.inbound_at[text] = time.time()
                    self.inbound_runner[text] = rid
                return
            self.holders.pop(session.sid, None)
        with self.lock:
            self.inbound_missed += 1
