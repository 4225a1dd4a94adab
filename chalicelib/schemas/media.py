"""Request and response models of the media routes (`POST /sessions/{id}/media/...`)."""
from __future__ import annotations

from typing import Optional

from pydantic import Field

from chalicelib.schemas.base import Model, Strict

MIME_PATTERN = r"^[\w.+-]+/[\w.+-]+$"
MEDIA_KEY_PATTERN = r"^sessions/[0-9a-f-]{36}/(uploads|inbound)/[A-Za-z0-9._-]{1,200}$"
MEDIA_KEY_FIELD = Field(min_length=1, max_length=300, pattern=MEDIA_KEY_PATTERN,
                        description="a key under this session's prefix (from upload-url or a message.received event)")


class UploadUrlRequest(Strict):
    mime_type: str = Field(max_length=127, pattern=MIME_PATTERN, description="Content-Type the upload must carry")
    size: int = Field(ge=1, description="exact size in bytes of the file to upload (capped by MEDIA_MAX_BYTES: "
                                        "413 above it)")
    filename: Optional[str] = Field(default=None, max_length=255,
                                    description="its extension ends the media_key (else one from mime_type)")


class UploadUrlOut(Model):
    media_key: str = Field(description="give it as `media_key` when sending a media message")
    upload_url: str
    method: str = Field(description="always PUT: send the raw bytes as the body")
    headers: dict[str, str] = Field(description="headers the PUT must carry exactly (they are signed)")
    expires_at: str = Field(description="ISO time after which the URL no longer works")
    max_bytes: int


class MediaUrlRequest(Strict):
    media_key: str = MEDIA_KEY_FIELD


class MediaUrlOut(Model):
    media_key: str
    url: str = Field(description="presigned GET URL")
    expires_at: str
    size: int
    mime_type: Optional[str] = None
