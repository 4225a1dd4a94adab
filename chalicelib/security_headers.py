"""Response headers that keep answers out of caches, frames and MIME sniffing.

Every answer of an authenticated route may carry a secret (a new session's key, a
rotated key or webhook secret, a webhook's configuration, message text), so all of them
say `Cache-Control: no-store`: no browser, proxy or CDN keeps a copy. Every answer
says `nosniff` and may not be framed; JSON gets a CSP that allows nothing, and `/docs`
sets its own (`chalicelib.openapi.DOCS_CSP`: our own assets only, no inline code).
"""
from __future__ import annotations

from typing import MutableMapping

API_CSP = "default-src 'none'; frame-ancestors 'none'"


def apply(headers: MutableMapping[str, str]) -> None:
    """On every answer (the app's middleware); a route's own value wins."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", API_CSP)


def no_store(headers: MutableMapping[str, str]) -> None:
    """On every answer of an authenticated route (the router), whatever the view set."""
    headers["Cache-Control"] = "no-store"
