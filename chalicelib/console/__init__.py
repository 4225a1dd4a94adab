"""The web console's static files (`/console`, `/console/assets/{asset}`) and their headers.

Plain HTML, CSS and ES modules in this folder, shipped in the Lambda package with the rest
of `chalicelib/`: no CDN, no build step. They are read from disk only by the console's
routes, so `import app` pays nothing for them. The page refers to its assets and the API
by paths relative to its own URL, so it works at `/console` (chalice local) and at
`/<stage>/console` behind API Gateway alike.

Security: a Content-Security-Policy that allows only the console's own origin (scripts,
styles, API calls; images also from `data:` for the QR code), plus the media bucket's
origin for `connect-src` so the browser can PUT an image to a presigned upload URL; no
inline script; no framing; no referrer.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).parent
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_ASSET_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}\.(js|css|svg)$")


@lru_cache(maxsize=32)
def _read(name: str) -> tuple[str, str] | None:
    path = HERE / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return text, '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def page() -> tuple[str, str]:
    """The HTML page and its ETag."""
    found = _read("index.html")
    assert found is not None, "chalicelib/console/index.html is missing from the package"
    return found


def asset(name: str) -> tuple[str, str, str] | None:
    """(body, content type, ETag) of an asset, or None for a name that is not one."""
    if not _ASSET_NAME.match(name):
        return None
    found = _read(name)
    if found is None:
        return None
    return found[0], TYPES["." + name.rsplit(".", 1)[1]], found[1]


def media_origins(bucket: str | None, endpoint_url: str | None, region: str) -> list[str]:
    """Where the browser PUTs an image for a presigned upload URL (see `chalicelib.aws_clients`:
    path-style on a custom endpoint such as LocalStack, virtual-hosted on AWS)."""
    if not bucket:
        return []
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        return [f"{parts.scheme}://{parts.netloc}"]
    return [f"https://{bucket}.s3.amazonaws.com", f"https://{bucket}.s3.{region}.amazonaws.com"]


def headers(content_type: str, etag: str, media: list[str]) -> dict[str, str]:
    connect = " ".join(["'self'", *media])
    return {
        "Content-Type": content_type,
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
        "ETag": etag,
    }
