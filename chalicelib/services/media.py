"""Media storage through the API: upload URLs, fresh download URLs, and the checks a
`media_key` passes before a message may use it.

Without `MEDIA_BUCKET` every entry point answers 503 `media_storage_not_configured`
(a deployment choice, not the caller's fault); nothing here is reached by a send that
uses `media_url` or `media_base64`.
"""
from __future__ import annotations

from typing import Any

from chalicelib.errors import DependencyUnavailable, NotFound, PayloadTooLarge, SessionNotFound, ValidationFailed
from chalicelib.media import MediaNotFound, MediaStore, MediaStoreError, belongs_to, session_prefix, upload_key
from chalicelib.repositories.sessions import SessionRepository


class MediaService:
    def __init__(self, store: MediaStore | None, sessions: SessionRepository, *, max_bytes: int, logger: Any = None):
        self.store = store
        self.sessions = sessions
        self.max_bytes = max_bytes
        self.log = logger

    def _store(self) -> MediaStore:
        if self.store is None:
            raise DependencyUnavailable("media storage is not configured on this deployment (MEDIA_BUCKET is unset)",
                                        code="media_storage_not_configured")
        return self.store

    def _session_uuid(self, session_id: str) -> str:
        row = self.sessions.status_of(session_id)
        if row is None:
            raise SessionNotFound(session_id)
        return str(row["id"])

    def upload_url(self, session_id: str, mime_type: str, size: int, filename: str | None) -> dict[str, Any]:
        store = self._store()
        if size > self.max_bytes:
            raise PayloadTooLarge(f"size {size} is over the media limit of {self.max_bytes} bytes",
                                  code="media_too_large", details=[{"field": "size", "type": "too_large",
                                                                    "message": f"at most {self.max_bytes}"}])
        key = upload_key(self._session_uuid(session_id), mime_type, filename)
        signed, headers = store.presign_put(key, mime_type, size)
        return {"media_key": key, "upload_url": signed.url, "method": "PUT", "headers": headers,
                "expires_at": signed.expires_at, "max_bytes": self.max_bytes}

    def download_url(self, session_id: str, media_key: str) -> dict[str, Any]:
        store = self._store()
        self._own_key(session_id, media_key)
        head = self._head(store, media_key)
        signed = store.presign_get(media_key)
        return {"media_key": media_key, "url": signed.url, "expires_at": signed.expires_at,
                "size": head["size"], "mime_type": head["mime_type"]}

    def check_for_send(self, session_uuid: str, payload: dict[str, Any]) -> None:
        """A send's `media_key`: this session's, present, within the cap. Fills `mime_type`
        from the upload when the message does not give one."""
        store = self._store()
        key = payload["media_key"]
        if not belongs_to(key, session_uuid):
            raise _foreign(key)
        try:
            head = store.head(key)
        except MediaNotFound as exc:
            raise ValidationFailed(f"media_key: {exc.message}", details=[
                {"field": "media_key", "type": "not_found", "message": exc.message}]) from None
        except MediaStoreError as exc:
            raise DependencyUnavailable(exc.message, code="media_storage_unavailable") from None
        if head["size"] > self.max_bytes:
            raise PayloadTooLarge(f"the media at media_key is {head['size']} bytes; the limit is {self.max_bytes}",
                                  code="media_too_large")
        if not payload.get("mime_type") and head["mime_type"]:
            payload["mime_type"] = head["mime_type"]

    def forget_session(self, session_uuid: str) -> None:
        """After a session is deleted: remove its media (bounded; the rest expires with the
        bucket's lifecycle rule). Never raises: the delete already happened."""
        if self.store is None:
            return
        try:
            deleted, finished = self.store.delete_prefix(session_prefix(session_uuid))
        except Exception as exc:  # noqa: BLE001 - best effort, logged
            if self.log:
                self.log.warning("session media not deleted", extra={"reason": str(exc)[:200]})
            return
        if self.log and (deleted or not finished):
            self.log.info("session media deleted", extra={"objects": deleted, "finished": finished})

    def _own_key(self, session_id: str, media_key: str) -> None:
        if not belongs_to(media_key, self._session_uuid(session_id)):
            raise _foreign(media_key)

    @staticmethod
    def _head(store: MediaStore, key: str) -> dict[str, Any]:
        try:
            return store.head(key)
        except MediaNotFound as exc:
            raise NotFound(exc.message, code="media_not_found") from None
        except MediaStoreError as exc:
            raise DependencyUnavailable(exc.message, code="media_storage_unavailable") from None


def _foreign(key: str) -> ValidationFailed:
    message = "media_key is not under this session's prefix (sessions/<this session's id>/)"
    return ValidationFailed(message, details=[{"field": "media_key", "type": "foreign_media_key", "message": message}])
