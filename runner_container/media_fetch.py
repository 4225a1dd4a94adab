"""Downloading `media_url` for outgoing media: size-capped and SSRF-guarded; reading a
`media_key` from the media bucket with the same cap.

The runner sits inside the VPC, so a URL given by a caller must not reach private or
metadata addresses: every connection (redirects included) goes through the same guard as
webhook deliveries (`chalicelib.webhooks.ssrf.GuardedAdapter`), which connects only to
addresses it has checked. The body is streamed and cut at the cap.
"""
from __future__ import annotations

from typing import Any

import requests

from chalicelib.webhooks.ssrf import GuardedAdapter
from runner_container.wa_messages import MessageBuildError

CHUNK = 64 * 1024


def fetch_media(url: str, limit: int, *, allow_private: bool, timeout: float = 30.0,
                max_redirects: int = 3) -> bytes:
    session = requests.Session()
    session.max_redirects = max_redirects
    adapter = GuardedAdapter(allow_private=allow_private, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        with session.get(url, stream=True, timeout=(5, timeout), headers={"User-Agent": "zemeow-media/1"}) as response:
            if response.status_code != 200:
                raise MessageBuildError("media_fetch_failed", f"media_url answered HTTP {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise MessageBuildError("media_too_large", f"media_url is {declared} bytes; the limit is {limit}")
            body = bytearray()
            for chunk in response.iter_content(CHUNK):
                body.extend(chunk)
                if len(body) > limit:
                    raise MessageBuildError("media_too_large", f"media_url is over the {limit}-byte limit")
            return bytes(body)
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        if "SSRF guard" in text:
            raise MessageBuildError("media_url_refused", "media_url resolves to an address that is not allowed") from None
        raise MessageBuildError("media_fetch_failed", f"could not download media_url: {text[:200]}") from None
    except requests.exceptions.Timeout:
        raise MessageBuildError("media_fetch_failed", "media_url did not answer in time") from None
    except requests.exceptions.TooManyRedirects:
        raise MessageBuildError("media_fetch_failed", f"media_url redirected more than {max_redirects} times") from None
    finally:
        session.close()


def fetch_stored_media(store: Any, key: str, limit: int) -> bytes:
    """`store` is a `chalicelib.media.MediaStore` (None without MEDIA_BUCKET)."""
    from chalicelib.media import MediaStoreError  # noqa: PLC0415

    if store is None:
        raise MessageBuildError("media_storage_not_configured", "media_key needs MEDIA_BUCKET on the runner")
    try:
        data, _content_type = store.get(key, limit)
    except MediaStoreError as exc:
        raise MessageBuildError(exc.code, exc.message) from None
    return data
