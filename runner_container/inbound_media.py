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
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Callable

from chalicelib.media import MediaStore, inbound_key
from chalicelib.repositories.message_log import MessageLogRepository, log_entry
from chalicelib.repositories.runtime import RuntimeRepository

if TYPE_CHECKING:  # pragma: no cover
    from runner_container.supervisor import RunnerSupervisor

DOWNLOAD_TIMEOUT = 120.0
WORKERS = 4


class InboundMedia:
    def __init__(self, store: MediaStore | None, *, enabled: bool, max_bytes: int,
                 session_uuid: Callable[[str], str | None], record: Callable[[str, str, dict[str, Any]], None],
                 log: Any, timeout: float = DOWNLOAD_TIMEOUT, workers: int = WORKERS):
        self.store = store if enabled else None
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
    def for_runner(cls, runner: "RunnerSupervisor") -> "InboundMedia":
        settings = runner.settings

        def session_uuid(session_id: str) -> str | None:
            with runner.db.connection() as conn:
                row = conn.execute("SELECT id FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
            return str(row["id"]) if row else None

        def record(session_id: str, name: str, data: dict[str, Any]) -> None:
            record_message_event(runner, session_id, name, data)

        return cls(runner.container.media_store, enabled=settings.inbound_media == "s3",
                   max_bytes=settings.inbound_media_max_bytes, session_uuid=session_uuid, record=record,
                   log=runner.log)

    def handle(self, session_id: str, name: str, data: dict[str, Any]) -> dict[str, Any] | None:
        """Event data to write now, or None when a worker writes it once the media is stored."""
        download = data.pop("download", None)
        if download is None or name != "message.received":
            return data  # (media of messages this account sent from its phone is not stored)
        size = data.get("file_length")
        if self.store is None:
            data["media"] = _failure(data, "media_storage_off",
                                     "inbound media storage is off (INBOUND_MEDIA=off or no MEDIA_BUCKET)")
            return data
        if size and size > self.max_bytes:
            data["media"] = _failure(data, "media_too_large",
                                     f"{size} bytes is over INBOUND_MEDIA_MAX_BYTES ({self.max_bytes})")
            return data
        with self._cond:
            if self._closing:
                data["media"] = _failure(data, "runner_stopping", "the runner was stopping")
                return data
            self._pending += 1
        self._jobs.submit(self._store_and_record, session_id, name, data, download)
        return None

    def _store_and_record(self, session_id: str, name: str, data: dict[str, Any],
                          download: Callable[[], bytes]) -> None:
        try:
            try:
                data["media"] = self._store(session_id, data, download)
            except Exception as exc:  # noqa: BLE001 - the message is written whatever happens to its media
                data["media"] = _failure(data, getattr(exc, "code", "media_storage_failed"), _clean(exc))
            try:
                self.record(session_id, name, data)
            except Exception as exc:  # noqa: BLE001 - logged; a deleted session takes its messages with it
                self.log.error("inbound media event not written", extra={"session_id": session_id,
                                                                          "error": str(exc)[:300]})
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _store(self, session_id: str, data: dict[str, Any], download: Callable[[], bytes]) -> dict[str, Any]:
        if self._closing:
            return _failure(data, "runner_stopping", "the runner was stopping")
        future = self._downloads.submit(download)
        try:
            blob = future.result(timeout=self.timeout)
        except FutureTimeout:
            return _failure(data, "media_timeout", f"the download took longer than {self.timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - DownloadError, network...
            return _failure(data, "media_download_failed", _clean(exc))
        if not isinstance(blob, (bytes, bytearray)) or not blob:
            return _failure(data, "media_download_failed", "the download returned no content")
        if len(blob) > self.max_bytes:
            return _failure(data, "media_too_large", f"{len(blob)} bytes is over INBOUND_MEDIA_MAX_BYTES "
                                                     f"({self.max_bytes})")
        session_uuid = self.session_uuid(session_id)
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

    def close(self, timeout: float = 20.0) -> None:
        """Stop taking work; write what is queued without its media; wait for the rest."""
        with self._cond:
            self._closing = True
            self._cond.wait_for(lambda: self._pending == 0, timeout)
        self._jobs.shutdown(wait=False, cancel_futures=False)
        self._downloads.shutdown(wait=False, cancel_futures=True)


def record_message_event(runner: "RunnerSupervisor", session_id: str, name: str, data: dict[str, Any]) -> None:
    """What the session actor's `_write(event=..., counter=..., activity=True)` does, from a
    media worker: no actor state is touched, so it needs not pass the actor's inbox (and it
    still works if the actor stopped meanwhile)."""
    envelope = None
    with runner.db.connection() as conn, conn.transaction():
        row = conn.execute("UPDATE sessions SET last_activity = now(), updated_at = now() WHERE session_id = %s "
                           "RETURNING session_id", (session_id,)).fetchone()
        if row is None:
            return  # deleted meanwhile
        if name == "message.received":
            RuntimeRepository.bump(conn, session_id, "messages_received")
        logged = log_entry(data)
        if logged:
            MessageLogRepository.record(conn, session_id, **logged)
        envelope = runner.container.events.record(conn, session_id, name, data,
                                                  metadata={"runner_id": runner.runner_id})
    runner.event_sender.send([envelope])
    runner.metrics.events.labels(event=name).inc()


def _failure(data: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    failure: dict[str, Any] = {"error": code, "message": message, "mime_type": data.get("mime_type")}
    if data.get("file_length"):
        failure["size"] = data["file_length"]
    return failure


def _clean(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or exc.__class__.__name__
    return " ".join(str(text).split())[:300]
