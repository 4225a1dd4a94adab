"""CORS for browsers calling the API from the origins in `CORS_ALLOW_ORIGINS` (default: none).

Preflights (`OPTIONS`) are answered by a route the router registers beside each path
(API Gateway forwards an OPTIONS request to the Lambda only when the path declares that
method; `chalice local` would otherwise answer it itself, without our origin check). An
allowed origin gets the methods the path has, the request headers the API reads, and a
max-age; any other origin gets 403 `cors_origin_not_allowed` without CORS headers, so
the browser blocks the call. Actual answers to an allowed origin carry
`Access-Control-Allow-Origin` (that origin, never `*` with a list) and expose the headers
a client needs: the request id and the rate-limit fields. Keys travel in headers, never
in cookies, so credentials are not allowed.
"""
from __future__ import annotations

from typing import Mapping, MutableMapping, Sequence

from chalice import Response

from chalicelib.http_errors import error_body

ALLOWED_REQUEST_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "X-Request-Id")
EXPOSED_HEADERS = ("X-Request-Id", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                   "RateLimit-Policy")
MAX_AGE_SECONDS = 600


def allowed_origin(origin: str | None, allowed: Sequence[str]) -> str | None:
    """The value of Access-Control-Allow-Origin for this Origin, or None when it is not allowed."""
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def decorate(response_headers: MutableMapping[str, str], request_headers: Mapping[str, str],
             allowed: Sequence[str]) -> None:
    """Add CORS fields to an actual (non-preflight) answer for an allowed origin. With a list
    of origins every answer says `Vary: Origin`: a cache must not hand an answer made for
    one origin (with or without the field) to another."""
    if allowed and "*" not in allowed:
        response_headers["Vary"] = "Origin"
    origin = allowed_origin(request_headers.get("origin"), allowed)
    if origin is None:
        return
    response_headers["Access-Control-Allow-Origin"] = origin
    response_headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSED_HEADERS)


def preflight(request_headers: Mapping[str, str], methods: Sequence[str], allowed: Sequence[str],
              request_id: str | None) -> Response:
    origin = allowed_origin(request_headers.get("origin"), allowed)
    if origin is None:
        shown = (request_headers.get("origin") or "(none)")[:200]
        return Response(body=error_body("cors_origin_not_allowed",
                                        f"origin {shown} is not in CORS_ALLOW_ORIGINS", request_id),
                        status_code=403, headers={"Content-Type": "application/json", "Vary": "Origin"})
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ", ".join(sorted({*methods, "OPTIONS"})),
        "Access-Control-Allow-Headers": ", ".join(ALLOWED_REQUEST_HEADERS),
        "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
    }
    if origin != "*":
        headers["Vary"] = "Origin"
    return Response(body="", status_code=204, headers=headers)
