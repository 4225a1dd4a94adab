"""zemeow's API Lambda (and, later, the webhook dispatcher): routes only.

Each view parses the request, calls a `chalicelib` service and shapes the answer.
Errors are mapped to the contract's JSON in `chalicelib.http_errors`.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable

from chalice import Chalice, Response

from chalicelib import http_errors
from chalicelib.bootstrap import get_container

app = Chalice(app_name="zemeow")
app.log.disabled = True  # Chalice's own logger would print tracebacks outside our JSON logs

# Paths that must answer even when the database is down (they report it instead).
_NO_SCHEMA_PATHS = {"/health", "/ready"}


def _request_id() -> str | None:
    request = app.current_request
    if request is None:
        return None
    return request.context.get("zemeow_request_id")


def _log_unexpected(exc: BaseException) -> None:
    get_container().logger.exception("unhandled error", extra={"error_type": exc.__class__.__name__})


def route(path: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """`app.route` with the contract's error mapping around the view."""

    def register(view: Callable[..., Any]) -> Any:
        return app.route(path, **kwargs)(http_errors.json_errors(view, _request_id, _log_unexpected))

    return register


@app.middleware("http")
def request_context(event: Any, get_response: Callable[[Any], Response]) -> Response:
    context = event.context
    request_id = (
        event.headers.get("x-request-id")
        or context.get("requestId")
        or str(uuid.uuid4())
    )[:128]
    context["zemeow_request_id"] = request_id
    container = get_container()
    container.logger.append_keys(request_id=request_id)
    try:
        if context.get("resourcePath") not in _NO_SCHEMA_PATHS:
            try:
                container.ensure_schema()
            except Exception as exc:  # noqa: BLE001 - mapped to 503 with a readable body
                return http_errors.error_response(exc, request_id)
        response = get_response(event)
        response = http_errors.normalise_chalice_error(response, request_id)
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        container.logger.remove_keys(["request_id"])


def _health_response(answer: Any) -> Response:
    return Response(body=answer.body, status_code=answer.status_code,
                    headers={"Cache-Control": "no-store"})


@route("/health", methods=["GET"])
def health() -> Response:
    return _health_response(get_container().health.health())


@route("/ready", methods=["GET"])
def ready() -> Response:
    return _health_response(get_container().health.ready())
