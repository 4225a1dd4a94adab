"""Downloading `media_url` for outgoing media: size-capped, SSRF-guarded, one deadline;
reading a `media_key` from the media bucket with the same cap.

The runner sits inside the VPC, so a URL given by a caller must not reach private or
metadata addresses: the download goes through the product's one outbound client
(`chalicelib.netguard.http.OutboundHttp`): the guard on every connection, redirects
included, no environment proxy, http(s) only, and a total deadline (a server dripping
a byte a second is cut off at `timeout`). Every failure is a coded `MessageBuildError`
in our own words: the command fails with that code, no exception text, no traceback.
"""
from __future__ import annotations

from typing import Any

from chalicelib.netguard.http import OutboundError, OutboundHttp
from chalicelib.netguard.resolve import NetPolicy
from runner_container.wa_messages import MessageBuildError

_CLIENTS: dict[tuple[NetPolicy, object], OutboundHttp] = {}


def _client(policy: NetPolicy) -> OutboundHttp:
    """One client per policy (its connection pools are per thread inside)."""
    key = (policy, policy.resolver)
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS.setdefault(key, OutboundHttp(policy, user_agent="zemeow-media/1", pool_maxsize=4))
    return client


def fetch_media(url: str, limit: int, *, policy: NetPolicy, timeout: float = 30.0, max_redirects: int = 3) -> bytes:
    try:
        response = _client(policy).request("GET", url, timeout=timeout, connect_timeout=5.0, follow_redirects=True,
                                           max_redirects=max_redirects, max_bytes=limit, what="media_url")
    except OutboundError as exc:
        if exc.kind == "refused":
            raise MessageBuildError("media_url_refused", f"media_url refused: {exc.message}") from None
        if exc.kind == "too_large":
            raise MessageBuildError("media_too_large", exc.message) from None
        if exc.kind == "timeout":
            raise MessageBuildError("media_fetch_failed", f"media_url did not answer in time ({exc.message})") from None
        if exc.kind == "too_many_redirects":
            raise MessageBuildError("media_fetch_failed",
                                    f"media_url redirected more than {max_redirects} times") from None
        raise MessageBuildError("media_fetch_failed", f"could not download media_url: {exc.message}") from None
    if response.status != 200:
        raise MessageBuildError("media_fetch_failed", f"media_url answered HTTP {response.status}")
    return response.body


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
