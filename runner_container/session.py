"""One session on this runner: an actor with its own thread and inbox.

Everything that touches a session (commands from its SQS group, driver callbacks from
whatsmeow's threads, reconciliation, timers for backoff and the QR timeout) goes through
the inbox and is handled one at a time, so the state machine never races itself:

    disconnected --connect--> connecting --QR scan / pair code--> authenticated
    connecting --stored device logs in--> authenticated
    connecting --dial failure--> error --backoff--> connecting
    authenticated --network drop--> disconnected --backoff--> connecting
    any --disconnect--> disconnected      any --logout / LoggedOut--> disconnected (device gone)
    connecting --QR_CODE_TIMEOUT without a scan--> disconnected (reason qr_timeout)

Every transition is one transaction: the `sessions` row, `session_runtime`, and the
event in the outbox (sent after commit).
"""
from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable

from chalicelib.netguard.proxies import dial_url
from chalicelib.netguard.resolve import Refused, Unresolvable
from chalicelib.repositories.message_log import MessageLogRepository, log_entry, person_jid, preview_of
from chalicelib.repositories.runtime import RuntimeRepository
from runner_container.drivers.base import DriverError, SessionClient, SessionConfig

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.supervisor import RunnerSupervisor

KEEP = object()
CONNECTED = ("connected", "authenticated")
FATAL_STOP = {"client_outdated", "stream_replaced", "temporary_ban", "bad_user_agent", "proxy_invalid",
              "proxy_refused"}
SEND_WAITS_FOR_LOGIN = 30.0  # a send that arrives while (re)connecting waits this long for the login
# commands that talk to WhatsApp as the logged-in account: while the session is (re)connecting
# they wait for the login, in order with the sends ("typing" then the message)
WAITS_FOR_LOGIN = {"send_message", "mark_read", "send_presence", "check_contacts", "list_groups", "group_info",
                   "create_group", "update_participants"}
CHAT_COMMANDS = WAITS_FOR_LOGIN - {"send_message"}
FIRST_QR_SECONDS = 60.0  # whatsmeow: the first code lives 60 s, the next ones 20 s
NEXT_QR_SECONDS = 20.0


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        """Exponential with 'equal jitter': half fixed, half random, so retries spread out."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class SessionGone(Exception):
    """The session row this actor serves is gone."""


class SessionReplaced(SessionGone):
    """The session was deleted and a new one took its session_id: the new row (another
    `sessions.id`) gets a fresh actor; nothing of this one's client may write to it."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SessionActor:
    def __init__(self, runner: "RunnerSupervisor", session_id: str, session_uid: str | None = None):
        self.runner = runner
        self.session_id = session_id
        # the row id of the session this actor serves, bound on the first load: every write
        # is `WHERE id = uid`, so a reused session_id never receives a deleted session's state
        self.uid = session_uid
        self.log = runner.log
        self.inbox: queue.Queue = queue.Queue()
        self.client: SessionClient | None = None
        self.generation = 0
        self.status: str | None = None
        self.jid: str | None = None
        self.logged_in = False
        self.active = False  # a client is connecting or connected
        self.proxy_url: str | None = None  # the proxy the current client dials through
        self.attempt = 0
        self.retry_at: float | None = None
        self.qr_deadline: float | None = None
        self.qr_seen = False
        self.pending_ids: set[str] = set()  # commands posted and not finished (no duplicates in the inbox)
        self.deferred: list[tuple[str, Callable[[], None], float]] = []  # waiting for the login, in order
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"session-{session_id}", daemon=True)

    # -- the inbox ----------------------------------------------------------------------
    def start(self) -> "SessionActor":
        self.thread.start()
        return self

    def post(self, *item: Any) -> None:
        self.inbox.put(item)

    def post_command(self, command_id: str, on_done: Callable[[], None]) -> None:
        """Queue a command unless it is already waiting here (SQS and the backlog scan may both bring it)."""
        with self.runner._lock:
            if command_id in self.pending_ids:
                on_done_later = on_done
                duplicate = True
            else:
                self.pending_ids.add(command_id)
                duplicate = False
        if duplicate:
            self.inbox.put(("ack", on_done_later))
        else:
            self.inbox.put(("command", command_id, on_done))

    def stop(self, *, graceful: bool, wait: float = 15.0) -> None:
        self.post("stop", graceful)
        self.done.wait(wait)

    def _sink(self, generation: int) -> Callable[[str, dict[str, Any]], None]:
        return lambda kind, data: self.inbox.put(("driver", generation, kind, data))

    def _next_timer(self) -> float | None:
        timers = [t for t in (self.retry_at, self.qr_deadline) if t is not None]
        if self.deferred:
            timers.append(self.deferred[0][2])
        return min(timers) if timers else None

    def _run(self) -> None:
        try:
            while True:
                deadline = self._next_timer()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = self.inbox.get(timeout=timeout)
                except queue.Empty:
                    item = ("timer",)
                try:
                    if item[0] == "stop":
                        self._shutdown(graceful=item[1])
                        return
                    self._handle(item)
                except SessionReplaced:
                    self.log.info("session was replaced by a new one with the same id; handing over",
                                  extra={"session_id": self.session_id})
                    self._drop_client()
                    self._hand_over()
                    return
                except SessionGone:
                    self.log.info("session row is gone; dropping its client", extra={"session_id": self.session_id})
                    self._drop_client()
                    self._drain_commands("session_not_found", "the session was deleted")
                    return
                except Exception as exc:  # noqa: BLE001 - one bad item never kills the actor
                    self.log.exception("session actor error", extra={"session_id": self.session_id,
                                                                     "error": str(exc)[:300]})
        finally:
            self.done.set()
            self.runner.actor_finished(self)

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "command":
            self._command(item[1], item[2])
        elif kind == "ack":
            item[1]()
        elif kind == "driver":
            if item[1] == self.generation:
                self._driver_event(item[2], item[3])
        elif kind == "reconcile":
            self._reconcile(item[1])
        elif kind == "timer":
            self._timers()

    def _drain_commands(self, code: str, message: str) -> None:
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return
            if item[0] == "command":
                self._fail_command(item[1], item[2], code, message)
            elif item[0] == "ack":
                item[1]()
        self._fail_deferred(code, message)

    def _hand_over(self) -> None:
        """Give the commands waiting here to the actor of the session that now has this
        session_id (they are its commands: a deleted session's commands are deleted with it)."""
        self.runner.actor_finished(self)  # actor_for() now builds a fresh actor
        successor = self.runner.actor_for(self.session_id)
        deferred, self.deferred = self.deferred, []
        waiting = [(command_id, on_done) for command_id, on_done, _ in deferred]
        while True:
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            if item[0] == "command":
                waiting.append((item[1], item[2]))
            elif item[0] == "ack":
                item[1]()
        for command_id, on_done in waiting:
            self._forget(command_id)
            successor.post_command(command_id, on_done)
        successor.post("reconcile", None)

    def _fail_command(self, command_id: str, on_done: Callable[[], None], code: str, message: str) -> None:
        try:
            row = self.runner.claim(command_id)
            if row is not None:
                self.runner.finish(row, ok=False, error={"code": code, "message": message})
        finally:
            self._forget(command_id)
            on_done()

    def _forget(self, command_id: str) -> None:
        with self.runner._lock:
            self.pending_ids.discard(command_id)

    def _fail_deferred(self, code: str, message: str) -> None:
        deferred, self.deferred = self.deferred, []
        for command_id, on_done, _ in deferred:
            self._fail_command(command_id, on_done, code, message)

    def _flush_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        for index, (command_id, on_done, deadline) in enumerate(deferred):
            if not self.logged_in:  # lost the login again while flushing: wait again, in order
                self.deferred = deferred[index:] + self.deferred
                return
            self._command(command_id, on_done, from_deferred=True)

    # -- state writes -------------------------------------------------------------------
    def _write(self, *, status: str | None = None, event: str | None = None, data: dict[str, Any] | None = None,
               reason: Any = KEEP, last_error: Any = KEEP, jid: Any = KEEP, desired: str | None = None,
               runtime: dict[str, Any] | None = None, counter: str | None = None, activity: bool = False,
               message: dict[str, Any] | None = None) -> None:
        sets, params = ["updated_at = now()"], []
        if status is not None:
            sets.append("status_changed_at = CASE WHEN status = %s THEN status_changed_at ELSE now() END")
            params.append(status)
            sets.append("status = %s")
            params.append(status)
            if status in CONNECTED:
                sets.append("connected_at = coalesce(connected_at, now()), last_connected_at = now()")
        for column, value in (("status_reason", reason), ("last_error", last_error), ("jid", jid),
                              ("desired_state", KEEP if desired is None else desired)):
            if value is not KEEP:
                sets.append(f"{column} = %s")
                params.append(value)
        if activity:
            sets.append("last_activity = now()")
        events = self.runner.container.events
        envelope = None
        if self.uid is None:
            self._load()  # binds the row id
        with self.runner.db.connection() as conn, conn.transaction():
            row = conn.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE id = %s RETURNING session_id",
                               [*params, self.uid]).fetchone()
            if row is None:
                self._load()  # raises SessionReplaced when another row has the id now
                raise SessionGone(self.session_id)
            values = {"runner_id": self.runner.runner_id, **(runtime or {})}
            RuntimeRepository.upsert(conn, self.session_id, values)
            if counter:
                RuntimeRepository.bump(conn, self.session_id, counter)
            if message:
                MessageLogRepository.record(conn, self.session_id, **message)
            if event:
                envelope = events.record(conn, self.session_id, event, data or {},
                                         metadata={"runner_id": self.runner.runner_id})
        if status is not None:
            self.status = status
        if envelope is not None:
            self.runner.event_sender.send([envelope])
            self.runner.metrics.events.labels(event=event).inc()

    def _load(self) -> dict[str, Any]:
        with self.runner.db.connection() as conn:
            row = conn.execute(
                "SELECT id, session_id, jid, status, desired_state, auto_reconnect, proxy_enabled, proxy_type, "
                "proxy_host, proxy_port, proxy_username, proxy_password_enc FROM sessions WHERE session_id = %s",
                (self.session_id,)).fetchone()
        if row is None:
            raise SessionGone(self.session_id)
        self._bind(row)
        return row

    def _bind(self, row: dict[str, Any]) -> None:
        if self.uid is None:
            self.uid = str(row["id"])
        elif str(row["id"]) != self.uid:
            raise SessionReplaced(self.session_id)

    def _proxy_url(self, row: dict[str, Any]) -> str | None:
        if not row["proxy_enabled"] or not row["proxy_host"] or not row["proxy_port"]:
            return None
        from urllib.parse import quote

        scheme = row["proxy_type"] or "http"
        credentials = ""
        if row["proxy_username"]:
            credentials = quote(row["proxy_username"], safe="")
            if row["proxy_password_enc"] is not None:
                password = self.runner.container.secret_box().decrypt(
                    row["proxy_password_enc"], context=f"proxy:{self.session_id}")
                credentials += ":" + quote(password, safe="")
            credentials += "@"
        host = row["proxy_host"]
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{credentials}{host}:{row['proxy_port']}"

    def _checked_proxy(self, proxy: str | None) -> str | None:
        """The proxy URL the driver dials: its host looked up now, every address checked by
        the network guard (PROXY_ALLOW_PRIVATE, metadata and the stack's ports always
        refused), and the checked address put in place of the name (no second lookup)."""
        if proxy is None:
            return None
        return dial_url(proxy, self.runner.container.proxy_policy)

    # -- connecting ---------------------------------------------------------------------
    def _start_connect(self, reason: str) -> None:
        row = self._load()
        self._drop_client()
        self.retry_at = None
        if row["jid"] and not self.runner.driver.has_device(self.session_id, row["jid"]):
            # the device store lost the device: the session is logged out in effect
            user_asked = reason in ("requested", "pair_phone")
            self._write(status="disconnected", event="session.logged_out",
                        data={"reason": "device_missing", "jid": row["jid"]}, reason="device_missing",
                        last_error="device_missing", jid=None,
                        desired=None if user_asked else "disconnected",
                        runtime={"logged_in": False, "connected_since": None, "qr_code": None})
            self._fail_deferred("device_missing", "the stored WhatsApp device is gone; pair again")
            if not user_asked:
                return
            row = {**row, "jid": None}  # a fresh pairing, as the user asked to connect
        self.jid = row["jid"]
        try:
            proxy = self._proxy_url(row)
        except Exception as exc:  # noqa: BLE001 - undecryptable password (key rotated?)
            self._error("proxy_invalid", f"the proxy password cannot be decrypted: {exc}", retry=False)
            return
        try:
            dial = self._checked_proxy(proxy)
        except Unresolvable as exc:  # DNS may come back: retried with backoff
            self._error("proxy_dns_failed", f"the session's proxy does not resolve: {exc.message}", retry=True)
            return
        except Refused as exc:  # the guard's rules: never dialled, until the proxy is changed
            self._error("proxy_refused", f"the session's proxy is not allowed: {exc.message}", retry=False)
            return
        self.generation += 1
        self.proxy_url = proxy
        self.client = self.runner.driver.client(SessionConfig(self.session_id, row["jid"], dial),
                                                self._sink(self.generation))
        self.active = True
        self.logged_in = False
        self.qr_seen = False
        self._write(status="connecting", event="session.connecting",
                    data={"reason": reason, "attempt": self.attempt, "restoring": bool(row["jid"]),
                          "proxy": bool(proxy)},
                    reason=reason, runtime={"qr_code": None, "qr_expires_at": None, "logged_in": False})
        try:
            self.client.connect()
        except DriverError as exc:
            self._failed({"code": exc.code, "message": exc.message})

    def _drop_client(self) -> None:
        client, self.client = self.client, None
        self.generation += 1  # late callbacks of the old client are ignored
        self.active = False
        self.logged_in = False
        self.qr_deadline = None
        if client is not None:
            try:
                client.disconnect()
            except Exception as exc:  # noqa: BLE001
                self.log.warning("client disconnect failed", extra={"session_id": self.session_id,
                                                                    "error": str(exc)[:200]})
            release = getattr(self.runner.driver, "release", None)
            if release:
                release(self.session_id, client)

    def _schedule_retry(self) -> bool:
        row = self._load()
        if row["desired_state"] != "connected" or not row["auto_reconnect"]:
            return False
        self.attempt += 1
        delay = self.runner.backoff.delay(self.attempt)
        self.retry_at = time.monotonic() + delay
        return True

    def _failed(self, data: dict[str, Any]) -> None:
        self._error(data.get("code", "connect_failure"), data.get("message", "connection failed"), retry=True)

    def _error(self, code: str, message: str, *, retry: bool) -> None:
        self._drop_client()
        retrying = retry and self._schedule_retry()
        delay = round(self.retry_at - time.monotonic(), 3) if retrying and self.retry_at else None
        self._write(status="error", event="session.error",
                    data={"code": code, "message": message, "retry_in_seconds": delay, "attempt": self.attempt},
                    reason=message, last_error=code, runtime={"qr_code": None, "qr_expires_at": None},
                    desired=None if retry else "disconnected")
        self.runner.metrics.errors.labels(code=code).inc()
        if not retrying:
            self._fail_deferred(code, message)

    def _timers(self) -> None:
        now = time.monotonic()
        if self.deferred and now >= self.deferred[0][2]:
            self._fail_deferred("not_connected", f"the session did not log in within {SEND_WAITS_FOR_LOGIN:g}s")
        if self.qr_deadline is not None and now >= self.qr_deadline and not self.logged_in:
            self.qr_deadline = None
            self._drop_client()
            self._write(status="disconnected", event="session.disconnected",
                        data={"reason": "qr_timeout",
                              "message": f"no scan within {self.runner.settings.qr_code_timeout:g}s"},
                        reason="qr_timeout", last_error="qr_timeout", desired="disconnected",
                        runtime={"qr_code": None, "qr_expires_at": None})
            self._fail_deferred("qr_timeout", "nobody scanned the QR code")
        if self.retry_at is not None and now >= self.retry_at:
            self.retry_at = None
            row = self._load()
            if row["desired_state"] == "connected" and not self.active:
                self.runner.metrics.reconnects.inc()
                self._write(counter="reconnects")
                self._start_connect("reconnect")

    # -- driver events ------------------------------------------------------------------
    def _driver_event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "qr":
            if self.qr_deadline is None:
                self.qr_deadline = time.monotonic() + self.runner.settings.qr_code_timeout
            lifetime = data.get("timeout") or (NEXT_QR_SECONDS if self.qr_seen else FIRST_QR_SECONDS)
            self.qr_seen = True
            expires = utcnow() + timedelta(seconds=min(lifetime, self.runner.settings.qr_code_timeout))
            self._write(event="session.qr", data={"qr_code": data["code"], "expires_at": expires.isoformat()},
                        runtime={"qr_code": data["code"], "qr_expires_at": expires})
            with self.runner.db.connection() as conn:
                conn.execute("UPDATE session_runtime SET qr_count = qr_count + 1 WHERE session_id = %s",
                             (self.session_id,))
        elif kind == "paired":
            self.jid = data.get("jid") or self.jid
            self.qr_deadline = None
            self._write(event="session.paired", data=data, jid=self.jid,
                        runtime={"qr_code": None, "qr_expires_at": None})
        elif kind == "pair_failed":
            self._write(event="session.error", data={**data, "retry_in_seconds": None})
        elif kind == "connected":
            self.jid = data.get("jid") or self.jid
            self.logged_in = True
            self.active = True
            self.attempt = 0
            self.qr_deadline = None
            self._write(status="authenticated", event="session.connected",
                        data={"jid": self.jid, "status": "authenticated"}, reason="logged_in", last_error=None,
                        jid=self.jid, runtime={"qr_code": None, "qr_expires_at": None, "logged_in": True,
                                               "connected_since": utcnow()})
            self._flush_deferred()
        elif kind == "disconnected":
            self._drop_client()
            retrying = self._schedule_retry()
            self._write(status="disconnected", event="session.disconnected",
                        data={"reason": data.get("reason", "network"), "will_reconnect": retrying},
                        reason=data.get("reason", "network"), runtime={"logged_in": False, "connected_since": None})
            if not retrying:
                self._fail_deferred("not_connected", "the connection dropped and auto_reconnect is off")
        elif kind == "retryable":
            self._failed(data)
        elif kind == "fatal":
            self._error(data.get("code", "error"), data.get("message", "WhatsApp refused the session"),
                        retry=False)
        elif kind == "logged_out":
            jid = self.jid
            self._drop_client()
            self.runner.driver.forget_device(self.session_id, jid)
            self._write(status="disconnected", event="session.logged_out",
                        data={"reason": data.get("reason", "logged_out"), "jid": jid},
                        reason=data.get("reason", "logged_out"), last_error=data.get("reason", "logged_out"),
                        jid=None, desired="disconnected",
                        runtime={"logged_in": False, "connected_since": None, "qr_code": None})
            self._fail_deferred("logged_out", "WhatsApp logged the device out")
        elif kind == "event":
            name = data["event"]
            payload = data["data"]
            if "download" in payload:  # received media: stored off this thread (runner_container/inbound_media.py)
                if self.uid is None:
                    self._load()
                payload = self.runner.inbound_media.handle(self.session_id, name, payload, self.uid)
                if payload is None:
                    return  # a media worker writes the event once the file is stored
            counter = "messages_received" if name == "message.received" else None
            logged = log_entry(payload) if name in ("message.received", "message.sent") else None
            self._write(event=name, data=payload, counter=counter, activity=name.startswith("message."),
                        message=logged)

    # -- reconciliation -----------------------------------------------------------------
    def _proxy_changed(self, row: dict[str, Any]) -> bool:
        try:
            return self._proxy_url(row) != self.proxy_url
        except Exception:  # noqa: BLE001 - an unreadable password is reported when connecting
            return True

    def _reconcile(self, row: dict[str, Any] | None) -> None:
        if row is not None:
            self._bind(row)
        row = row or self._load()
        if row["desired_state"] == "connected":
            if not self.active and self.retry_at is None:
                self._start_connect("restore")
            elif self.active and self._proxy_changed(row):
                # whatsmeow applies a proxy to new connections only: reconnect through the new one
                # (the stored device resumes the login, no QR)
                self._drop_client()
                self.attempt = 0
                self._start_connect("proxy_changed")
        elif self.active or row["status"] not in ("disconnected", "error"):
            # (an `error` left by a fatal failure stays visible; only live or stale
            # connected/connecting states are corrected)
            self._drop_client()
            self.retry_at = None
            self._write(status="disconnected", event="session.disconnected",
                        data={"reason": "desired_state"}, reason="desired_state",
                        runtime={"logged_in": False, "connected_since": None, "qr_code": None})

    # -- commands -----------------------------------------------------------------------
    def _command(self, command_id: str, on_done: Callable[[], None], from_deferred: bool = False) -> None:
        if not from_deferred and (self.deferred or self._must_wait_for_login(command_id)):
            self.deferred.append((command_id, on_done, time.monotonic() + SEND_WAITS_FOR_LOGIN))
            return
        acknowledged = False
        try:
            if self.uid is None:
                self._load()
            row = self.runner.claim(command_id, self.uid)
            if row is None:
                self._not_ours(command_id)
                return  # finished already (a resend), running on a live runner, or not this row's
            # claimed: the row carries the command from here (runner_container/acker.py), so
            # release the queue message now and let SQS hand over the session's next one
            on_done()
            acknowledged = True
            started = time.monotonic()
            try:
                result = self._execute(row["type"], row["payload"] or {})
            except SessionGone:
                self.runner.finish(row, ok=False, error={"code": "session_not_found",
                                                         "message": "the session was deleted"})
                raise
            except DriverError as exc:
                self.runner.finish(row, ok=False, error={"code": exc.code, "message": exc.message})
            except Exception as exc:  # noqa: BLE001
                self.log.exception("command failed", extra={"command_id": command_id})
                self.runner.finish(row, ok=False, error={"code": "internal_error", "message": str(exc)[:300]})
            else:
                self.runner.finish(row, ok=True, result=result)
            self.log.debug("command done", extra={"command_id": command_id, "type": row["type"],
                                                  "ms": round((time.monotonic() - started) * 1000, 1)})
        finally:
            self._forget(command_id)
            if not acknowledged:
                on_done()

    def _not_ours(self, command_id: str) -> None:
        """A queued command the claim refused because another session row owns it: either this
        actor is stale (SessionReplaced, raised by `_load`: the command is handed over) or
        the command's owner was deleted (it fails, naming why)."""
        row = self.runner.commands.get_by_id(command_id)
        if row is None or row["status"] != "queued" or str(row["session_uid"]) == self.uid:
            return
        self._load()
        claimed = self.runner.claim(command_id)
        if claimed is not None:
            self.runner.finish(claimed, ok=False, error={"code": "session_not_found",
                                                         "message": "the command's session was deleted"})

    def _must_wait_for_login(self, command_id: str) -> bool:
        """A send that arrives while the session is (re)connecting waits for the login."""
        if self.logged_in:
            return False
        reconnecting = self.active or self.retry_at is not None
        if not reconnecting:
            return False
        row = self.runner.commands.get_by_id(command_id)
        return row is not None and row["type"] in WAITS_FOR_LOGIN and row["status"] == "queued"

    def _execute(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        if type == "ping":
            return {"pong": True, "runner_id": self.runner.runner_id}
        if type == "connect":
            if self.logged_in:
                return {"status": self.status}
            if not self.active:
                self.attempt = 0
                self._start_connect("requested")
            return {"status": self.status or "connecting"}
        if type == "disconnect":
            self._drop_client()
            self.retry_at = None
            self._write(status="disconnected", event="session.disconnected", data={"reason": "requested"},
                        reason="requested", runtime={"logged_in": False, "connected_since": None, "qr_code": None})
            return {"status": "disconnected"}
        if type == "logout":
            return self._logout()
        if type == "pair_phone":
            if self.logged_in:
                raise DriverError("already_paired", "the session is already paired")
            if not self.active:
                self.attempt = 0
                self._start_connect("pair_phone")
            if self.client is None:
                raise DriverError("not_connecting", "the session could not start connecting")
            code = self.client.pair_phone(payload["phone"], bool(payload.get("show_push_notification", True)),
                                          timeout=15.0)
            return {"pairing_code": code}
        if type == "send_message":
            if not self.logged_in or self.client is None:
                raise DriverError("not_connected", "the session is not connected to WhatsApp")
            payload = self._with_references(payload)
            sent = self.client.send(payload)
            shown = {k: v for k, v in payload.items() if k not in ("media_base64",)}  # no blobs in events
            self._write(event="message.sent", data={**shown, "message_id": sent["message_id"],
                                                    "timestamp": sent.get("timestamp")},
                        counter="messages_sent", activity=True,
                        message={"message_id": sent["message_id"], "chat_jid": payload["to"],
                                 "sender_jid": person_jid({"jid": self.jid}), "from_me": True,
                                 "type": payload["type"], "preview": preview_of(payload),
                                 "sent_at": sent.get("timestamp")})
            return sent
        if type in CHAT_COMMANDS:
            return self._chat_command(type, payload)
        raise DriverError("unknown_command", f"unknown command type {type!r}")

    # -- chats, contacts and groups -----------------------------------------------------
    def _chat_command(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.logged_in or self.client is None:
            raise DriverError("not_connected", "the session is not connected to WhatsApp")
        client = self.client
        if type == "mark_read":
            for sender, message_ids in self._read_receipts(payload):
                client.mark_read(payload["chat"], message_ids, sender)
            ids = payload["message_ids"]
            return {"chat": payload["chat"], "message_ids": ids, "read": len(ids)}
        if type == "send_presence":
            client.send_presence(payload["state"], payload.get("chat"))
            return {"state": payload["state"], **({"chat": payload["chat"]} if payload.get("chat") else {})}
        if type == "check_contacts":
            return {"contacts": client.check_contacts(payload["phones"])}
        if type == "list_groups":
            return {"groups": client.list_groups()}
        if type == "group_info":
            return {"group": client.group_info(payload["group_jid"])}
        if type == "create_group":
            return {"group": client.create_group(payload["name"], payload["participants"])}
        if type == "update_participants":
            return {"participants": client.update_participants(payload["group_jid"], payload["action"],
                                                               payload["participants"])}
        raise DriverError("unknown_command", f"unknown command type {type!r}")

    def _with_references(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Add what WhatsApp needs about the messages a send refers to, from the message log:
        `quoted` (a reply: the quoted message's sender and preview) and `target` (a reaction,
        edit or revoke: whose message it is). Unknown ids (older than the log) are sent as
        given, with the API's `from_me` as the only hint."""
        out = dict(payload)
        lookups = {"quoted": payload.get("quoted_message_id")}
        if payload.get("type") in ("reaction", "edit", "revoke"):
            lookups["target"] = payload.get("message_id")
        for field, message_id in lookups.items():
            if not message_id:
                continue
            found = self.runner.message_log.find(self.session_id, message_id)
            if found is not None:
                out[field] = {"message_id": message_id, "chat": found["chat_jid"], "from_me": found["from_me"],
                              "sender": found["sender_jid"] or (self.jid if found["from_me"] else None),
                              "type": found["type"], "preview": found["preview"]}
        return out

    def _read_receipts(self, payload: dict[str, Any]) -> list[tuple[str | None, list[str]]]:
        """(sender, ids) batches for a read: in a group, a receipt names the author of the
        messages, so ids without a given sender are grouped by their author from the message
        log; an id the log does not know fails the command, asking for `sender`."""
        ids, sender = payload["message_ids"], payload.get("sender")
        if sender or not payload["chat"].endswith("@g.us"):
            return [(sender, ids)]
        batches: dict[str, list[str]] = {}
        unknown = []
        known = self.runner.message_log.find_many(self.session_id, ids)
        for message_id in ids:
            found = known.get(message_id)
            if found is None or not found["sender_jid"]:
                unknown.append(message_id)
            else:
                batches.setdefault(found["sender_jid"], []).append(message_id)
        if unknown:
            raise DriverError("sender_required", f"the author of {', '.join(unknown[:5])} is not in the message "
                              "log; give `sender` (a read receipt in a group names the message's author)")
        return list(batches.items())

    def _logout(self) -> dict[str, Any]:
        row = self._load()
        jid = self.jid or row["jid"]
        warning = None
        if self.client is not None and self.logged_in:
            try:
                self.client.logout()
            except DriverError as exc:
                warning = exc.message
        self._drop_client()
        self.runner.driver.forget_device(self.session_id, jid)
        self.retry_at = None
        self._write(status="disconnected", event="session.logged_out", data={"reason": "requested", "jid": jid},
                    reason="logged_out", last_error=None, jid=None, desired="disconnected",
                    runtime={"logged_in": False, "connected_since": None, "qr_code": None, "qr_expires_at": None})
        return {"logged_out": True, "jid": jid, **({"warning": warning} if warning else {})}

    # -- shutdown -----------------------------------------------------------------------
    def _shutdown(self, *, graceful: bool) -> None:
        was_active = self.active or self.retry_at is not None
        self._drop_client()
        if graceful and was_active:
            try:
                self._write(status="disconnected", event="session.disconnected",
                            data={"reason": "runner_handover"}, reason="runner_handover",
                            runtime={"logged_in": False, "connected_since": None, "qr_code": None})
            except SessionGone:
                pass
            except Exception as exc:  # noqa: BLE001 - the next owner reconciles anyway
                self.log.warning("could not record handover", extra={"session_id": self.session_id,
                                                                     "error": str(exc)[:200]})
        # commands still in the inbox stay `queued`/unacknowledged: the next owner runs them
