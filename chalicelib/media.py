"""Media in the S3 media bucket (`MEDIA_BUCKET`): object keys, presigned URLs, capped reads.

Shared by the API (upload URLs, fresh download URLs, checks before a send, clean-up on
session delete) and the runner (reading `media_key` for outgoing media, storing received
media). Every object lives under its session's prefix,

    sessions/<session uuid>/uploads/<random hex>          PUT by a client through an upload URL
    sessions/<session uuid>/inbound/<message id>.<ext>    stored by the runner for message.received

keyed by the session row's `id` (a UUID), not its `session_id`: a session id can be used
again after a delete, and the new session must never reach the old one's media.

Presigned URLs are SigV4. With temporary credentials (a Lambda's or an ECS task's role) a
URL stops working when the credentials that signed it expire, whatever `X-Amz-Expires`
says, so `expires_at` is the earlier of the two: the honest time a client can rely on.
"""
from __future__ import annotations

import mimetypes
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError

UPLOAD_URL_SECONDS = 15 * 60  # an upload URL is for now, not for later
DELETE_BUDGET_SECONDS = 10.0  # session delete: what is left after this expires with the bucket's lifecycle
KEY_PATTERN = re.compile(r"^sessions/[0-9a-f-]{36}/(uploads|inbound)/[A-Za-z0-9._-]{1,200}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_DEFAULT_EXTENSIONS = {"image": ".jpg", "video": ".mp4", "audio": ".ogg", "sticker": ".webp", "document": ".bin"}
_PREFERRED_EXTENSIONS = {"image/jpeg": ".jpg", "audio/ogg": ".ogg", "audio/mpeg": ".mp3", "video/mp4": ".mp4",
                         "image/webp": ".webp", "image/png": ".png", "application/pdf": ".pdf", "text/plain": ".txt"}
CHUNK = 256 * 1024


class MediaStoreError(Exception):
    """A storage failure; `code` is the snake_case reason callers pass on."""

    code = "media_storage_failed"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class MediaNotFound(MediaStoreError):
    code = "media_not_found"


class MediaTooLarge(MediaStoreError):
    code = "media_too_large"


def session_prefix(session_uuid: str) -> str:
    return f"sessions/{session_uuid}/"


def upload_key(session_uuid: str, mime_type: str | None = None, filename: str | None = None) -> str:
    return f"{session_prefix(session_uuid)}uploads/{secrets.token_hex(16)}{extension_for('', mime_type, filename)}"


def extension_for(kind: str, mime_type: str | None, filename: str | None = None) -> str:
    if filename and "." in filename:
        suffix = "." + filename.rsplit(".", 1)[1].lower()
        if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
            return suffix
    base = (mime_type or "").split(";")[0].strip().lower()
    guessed = _PREFERRED_EXTENSIONS.get(base) or (mimetypes.guess_extension(base) if base else None)
    return guessed or _DEFAULT_EXTENSIONS.get(kind, ".bin")


def inbound_key(session_uuid: str, message_id: str, kind: str, mime_type: str | None,
                filename: str | None = None) -> str:
    """WhatsApp ids are hex-like, but they come from the network: anything else is replaced."""
    safe_id = _UNSAFE.sub("_", message_id)[:120] or secrets.token_hex(8)
    return f"{session_prefix(session_uuid)}inbound/{safe_id}{extension_for(kind, mime_type, filename)}"


def belongs_to(key: str, session_uuid: str) -> bool:
    return bool(KEY_PATTERN.match(key)) and key.startswith(session_prefix(session_uuid))


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class SignedUrl:
    url: str
    expires_at: str
    expires_in: int


class MediaStore:
    def __init__(self, s3: Any, bucket: str, *, url_ttl: float, clock: Callable[[], float] = time.time):
        self.s3 = s3
        self.bucket = bucket
        self.url_ttl = int(url_ttl)
        self.clock = clock

    # -- presigned URLs (no request to S3) ------------------------------------------------
    def _lifetime(self, wanted: int) -> int:
        """`wanted`, cut to what the signing credentials have left (temporary credentials)."""
        try:
            credentials = self.s3._request_signer._credentials  # botocore has no public accessor
            expiry = getattr(credentials, "_expiry_time", None)
        except AttributeError:
            expiry = None
        if expiry is None:
            return wanted
        left = int(expiry.timestamp() - self.clock())
        return max(1, min(wanted, left))

    def presign_put(self, key: str, content_type: str, size: int) -> tuple[SignedUrl, dict[str, str]]:
        """A PUT URL with Content-Type and Content-Length signed: on AWS, S3 refuses a body of
        another size or type (SignatureDoesNotMatch), which enforces the size cap server-side."""
        lifetime = self._lifetime(UPLOAD_URL_SECONDS)
        url = self.s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type,
                                  "ContentLength": size}, ExpiresIn=lifetime)
        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        return SignedUrl(url, iso(self.clock() + lifetime), lifetime), headers

    def presign_get(self, key: str, *, ttl: float | None = None) -> SignedUrl:
        lifetime = self._lifetime(int(ttl or self.url_ttl))
        url = self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key},
                                             ExpiresIn=lifetime)
        return SignedUrl(url, iso(self.clock() + lifetime), lifetime)

    # -- objects --------------------------------------------------------------------------
    def head(self, key: str) -> dict[str, Any]:
        with _storage_errors(key):
            answer = self.s3.head_object(Bucket=self.bucket, Key=key)
        return {"size": int(answer.get("ContentLength") or 0), "mime_type": answer.get("ContentType"),
                "metadata": answer.get("Metadata") or {}}

    def get(self, key: str, limit: int) -> tuple[bytes, str | None]:
        """The object's bytes (streamed, cut at `limit`) and its Content-Type."""
        with _storage_errors(key):
            answer = self.s3.get_object(Bucket=self.bucket, Key=key)
        body = answer["Body"]
        try:
            declared = int(answer.get("ContentLength") or 0)
            if declared > limit:
                raise MediaTooLarge(f"media at '{key}' is {declared} bytes; the limit is {limit}")
            data = bytearray()
            for chunk in body.iter_chunks(CHUNK):
                data.extend(chunk)
                if len(data) > limit:
                    raise MediaTooLarge(f"media at '{key}' is over the {limit}-byte limit")
        except (BotoCoreError, OSError) as exc:
            raise MediaStoreError(f"media download from storage failed: {exc.__class__.__name__}") from None
        finally:
            body.close()
        return bytes(data), answer.get("ContentType")

    def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None) -> None:
        with _storage_errors(key, reading=False):
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                               Metadata=metadata or {})

    def delete_prefix(self, prefix: str, budget: float = DELETE_BUDGET_SECONDS) -> tuple[int, bool]:
        """Delete every object under `prefix` within `budget` seconds: (deleted, finished)."""
        deadline = time.monotonic() + budget
        deleted = 0
        while time.monotonic() < deadline:
            listing = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1000)
            keys = [{"Key": item["Key"]} for item in listing.get("Contents", [])]
            if not keys:
                return deleted, True
            answer = self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise MediaStoreError(f"could not delete {len(answer['Errors'])} objects: {first.get('Code')}")
            deleted += len(keys)
        return deleted, False


@contextmanager
def _storage_errors(key: str, *, reading: bool = True) -> Iterator[None]:
    """S3's errors as ours: reading a missing object is MediaNotFound, anything else
    (a write to a missing bucket too) MediaStoreError."""
    try:
        yield
    except ClientError as exc:
        if reading and _status(exc) == 404:
            raise MediaNotFound(f"no media at '{key}' (never uploaded, expired or deleted)") from None
        raise MediaStoreError(f"media storage answered {_reason(exc)}") from None
    except BotoCoreError as exc:
        raise MediaStoreError(f"media storage unreachable: {exc.__class__.__name__}") from None


def _status(exc: ClientError) -> int:
    meta = exc.response.get("ResponseMetadata", {})
    code = exc.response.get("Error", {}).get("Code")
    return 404 if code in ("NoSuchKey", "404", "NotFound") else int(meta.get("HTTPStatusCode") or 0)


def _reason(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'error')}: {str(error.get('Message', ''))[:160]}"
