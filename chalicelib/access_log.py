"""The access log: one structured line per API request, written by the request middleware.

Fields: `method`, `route` (the template, `/sessions/{session_id}`, so lines group by
route and no path carries data), `path_session_id` / `session_id`, `status`,
`duration_ms`, `key_kind` (`admin`, `session` or `none`: no key, or one that did not
authenticate) and the logger's `request_id`. Built from the route and the principal the
router found, never from headers: no key (nor any other header) can reach the line.
Powertools leaves out fields whose value is None: a request without a session has no
`session_id` field.
"""
from __future__ import annotations

from typing import Any

ACCESS_MESSAGE = "request"


def access_fields(request: Any, status: int, duration_ms: float) -> dict[str, Any]:
    context = request.context or {}
    principal = context.get("zemeow_principal")
    path_session = (request.uri_params or {}).get("session_id")
    return {
        "method": request.method,
        "route": context.get("resourcePath"),
        "status": status,
        "duration_ms": round(duration_ms, 3),
        "key_kind": principal.kind if principal is not None else "none",
        # the session addressed (path) or, for a session key, its own
        "session_id": path_session or (principal.session_id if principal is not None else None),
    }


def log_request(logger: Any, request: Any, status: int, duration_ms: float) -> None:
    logger.info(ACCESS_MESSAGE, extra=access_fields(request, status, duration_ms))
