"""Received media -> the media bucket -> a presigned URL in `message.received`.

A driver hands a received media message to the session actor with a `download` callable
in its event data (neonize: `client.download_any(message)`; emulator: the bytes given to
its control API). The actor passes it here and goes on with its inbox: downloading from
WhatsApp and uploading to S3 can take seconds, and a send or a state change of the
session must not wait behind them. A small pool does the work, each download bounded by
`timeout`, and then writes the event itself (one transaction: the event with the
session's next sequence number, `messages_received`, `last_activity`), so the message is
never lost: when anything fails the event is still written, its `media` naming the error:

    "media": {"url", "expires_at", "media_key", "mime_type", "size", "sha256", "filename"?}
    "media": {"error": "media_download_failed" | "media_timeout" | "media_too_large" |
              "media_storage_failed" | "media_storage_off" | "runner_stopping", "message", ...}

The price: a media message's event can come after a text message received just after
it (each carries its WhatsApp `timestamp`; webhook retries reorder events anyway).

A runner can die while a worker holds a message (kill -9, a crash, a lost host). So
before the work is queued the message is `hold`-ed: a row in `inbound_media_pending`
written from the actor's thread. The worker's event write deletes that row in the same
transaction; `sweep_abandoned` (every runner, on its reconcile tick) writes the event of a
row older than ABANDONED_AFTER with `media.error = "media_abandoned"`. Whichever deletes
the row writes the event, so it is written exactly once.
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any, Callable

from chalicelib.media import MediaStore, inbound_key
from runner_container.machine import message_change

DOWNLOAD_TIMEOUT = 120.0
WORKERS = 4
ABANDONED_AFTER = 600.0  # seconds: far beyond a worker's bounded download + upload


class InboundMedia:
    def __init__(self, store: MediaStore | None, *, enabled: bool, max_bytes: int,
                 session_uuid: Callable[[str], str | None], record: Callable[..., None],
                 log: Any, timeout: float = DOWNLOAD_TIMEOUT, workers: int = WORKERS,
                 hold: Callable[..., None] = lambda session_id, name, data, session_uid=None: None,
                 observe: Callable[[str], None] = lambda outcome: None):
        self.store = store if enabled else None
        self.hold = hold
        self.observe = observe  # an outcome per received media message (a runner metric)
        self.max_bytes = max_bytes
        self.session_uuid = session_uuid
        self.record = record
        self.log = log
        self.timeout = timeout
        self._jobs = ThreadPoolExecutor(workers, thread_name_prefix="inbound-media")
        # downloads run apart from the jobs, so a job can stop waiting for a download that hangs
        self._downloads = ThreadPoolExecutor(workers, thread_name_prefix="media-download")
        self._cond = threading.Condition()
        self._pending = 0
        self._closing = False

    @classmethod
    def for_ports(cls, ports: Any, media_store: MediaStore | None, *, enabled: bool,
                  max_bytes: int) -> "InboundMedia":
        runner_id = ports.settings.runner_id

        def hold(session_id: str, name: str, data: dict[str, Any], session_uid: str | None = None) -> None:
            ports.pending.hold(session_id, name, data, runner_id=runner_id, session_uid=session_uid)

        def record(session_id: str, name: str, data: dict[str, Any], session_uid: str | None = None) -> None:
            record_message_event(ports, session_id, name, data, held=True, session_uid=session_uid)

        return cls(media_store, enabled=enabled, max_bytes=max_bytes, session_uuid=ports.store.uid_of,
                   record=record, log=ports.log, hold=hold,
                   observe=lambda outcome: ports.metrics.inbound_media.labels(outcome=outcome).inc())

    def handle(self, session_id: str, name: str, data: dict[str, Any],
               session_uid: str | None = None) -> dict[str, Any] | None:
        """Event data to write now, or None when a worker writes it once the media is stored.
        `session_uid` is the row id of the session the message came to: the held row, the
        media key and the event write are bound to it, so nothing of a deleted session's
        client lands in a new session reusing its session_id."""
        download = data.pop("download", None)
        if download is None or name != "message.received":
            return data  # (media of messages this account sent from its phone is not stored)
        size = data.get("file_length")
        if self.store is None:
            return self._without_file(data, "media_storage_off",
                                      "inbound media storage is off (INBOUND_MEDIA=off or no MEDIA_BUCKET)")
        if size and size > self.max_bytes:
            return self._without_file(data, "media_too_large",
                                      f"{size} bytes is over INBOUND_MEDIA_MAX_BYTES ({self.max_bytes})")
        with self._cond:
            closing = self._closing
            if not closing:
                self._pending += 1
        if closing:
            return self._without_file(data, "runner_stopping", "the runner was stopping")
        try:
            self.hold(session_id, name, data, session_uid=session_uid)  # durable before it leaves the actor
        except BaseException:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            raise  # the database is down: the actor's write would have failed the same way
        self._jobs.submit(self._store_and_record, session_id, name, data, download, session_uid)
        return None

    def _store_and_record(self, session_id: str, name: str, data: dict[str, Any],
                          download: Callable[[], bytes], session_uid: str | None) -> None:
        try:
            try:
                data["media"] = self._store(session_id, data, download, session_uid)
            except Exception as exc:  # noqa: BLE001 - the message is written whatever happens to its media
                data["media"] = _failure(data, getattr(exc, "code", "media_storage_failed"), _clean(exc))
            self.observe("stored" if "url" in data["media"] else data["media"]["error"])
            try:
                self.record(session_id, name, data, session_uid=session_uid)
            except Exception as exc:  # noqa: BLE001 - logged; a deleted session takes its messages with it
                self.log.error("inbound media event not written", extra={"session_id": session_id,
                                                                          "error": str(exc)[:300]})
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _without_file(self, data: dict[str, Any], code: str, message: str) -> dict[str, Any]:
        data["media"] = _failure(data, code, message)
        self.observe(code)
        return data

    def _store(self, session_id: str, data: dict[str, Any], download: Callable[[], bytes],
               session_uid: str | None = None) -> dict[str, Any]:
        if self._closing:
            return _failure(data, "runner_stopping", "the runner was stopping")
        blob = self._download(download)
        if isinstance(blob, tuple):
            return _failure(data, *blob)
        session_uuid = session_uid or self.session_uuid(session_id)
        if session_uuid is None:
            return _failure(data, "session_not_found", "the session was deleted")
        mime_type = data.get("mime_type") or "application/octet-stream"
        key = inbound_key(session_uuid, data.get("message_id") or "", data.get("type", ""), mime_type,
                          data.get("filename"))
        assert self.store is not None
        self.store.put(key, bytes(blob), mime_type)
        signed = self.store.presign_get(key)
        media = {"url": signed.url, "expires_at": signed.expires_at, "media_key": key, "mime_type": mime_type,
                 "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        if data.get("filename"):
            media["filename"] = data["filename"]
        return media

    def _download(self, download: Callable[[], bytes]) -> bytes | tuple[str, str]:
        """The file, or (code, message) of why there is none."""
        future = self._downloads.submit(download)
        try:
            blob = future.result(timeout=self.timeout)
        except FutureTimeout:
            return "media_timeout", f"the download took longer than {self.timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - DownloadError, network...
            return "media_download_failed", _clean(exc)
        if not isinstance(blob, (bytes, bytearray)) or not blob:
            return "media_download_failed", "the download returned no content"
        if len(blob) > self.max_bytes:
            return "media_too_large", f"{len(blob)} bytes is over INBOUND_MEDIA_MAX_BYTES ({self.max_bytes})"
        return bytes(blob)

    def close(self, timeout: float = 20.0) -> None:
        """Stop taking work; write what is queued without its media; wait for the rest."""
        with self._cond:
            self._closing = True
            self._cond.wait_for(lambda: self._pending == 0, timeout)
        self._jobs.shutdown(wait=False, cancel_futures=False)
        self._downloads.shutdown(wait=False, cancel_futures=True)


def record_message_event(ports: Any, session_id: str, name: str, data: dict[str, Any], *,
                         held: bool = False, session_uid: str | None = None) -> bool:
    """The message's write from a media worker: the same `SessionStore.apply` as the
    actor's (`runner_container.commands.message_change`), without passing the actor's
    inbox (no actor state is touched, and it still works if the actor stopped meanwhile).
    With `held`, only if this call is the one that releases the message's pending row
    (the sweeper may have written it already). With `session_uid`, only while that row
    still has the session_id (a new session reusing the id gets nothing of the old one's
    messages). Whether the event was written."""
    change = replace(message_change(name, data), metadata={"runner_id": ports.settings.runner_id},
                     release_held=(data.get("message_id") or "") if held else None)
    envelope = ports.store.apply(session_id, change, uid=session_uid)
    if not envelope:
        return False  # released by another writer, or the session was deleted meanwhile
    ports.events.send([envelope])
    ports.metrics.events.labels(event=name).inc()
    return True


def sweep_abandoned(ports: Any, older_than: float = ABANDONED_AFTER, limit: int = 100) -> int:
    """Write the events of received media messages whose runner died while storing the
    file; their `media` says so. Returns how many were written."""
    written = 0
    for row in ports.pending.abandoned(older_than, limit):
        data = dict(row["data"])
        data["media"] = _failure(data, "media_abandoned", "the runner stopped before the file was stored; "
                                                          "the message arrived without it")
        if record_message_event(ports, row["session_id"], row["event"], data, held=True,
                                session_uid=row["session_uid"]):
            written += 1
            ports.metrics.inbound_media.labels(outcome="media_abandoned").inc()
    return written


def _failure(data: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    failure: dict[str, Any] = {"error": code, "message": message, "mime_type": data.get("mime_type")}
    if data.get("file_length"):
        failure["size"] = data["file_length"]
    return failure


def _clean(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())[:300]
