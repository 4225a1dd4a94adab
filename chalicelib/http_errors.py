"""The one place where errors become HTTP answers.

Every non-2xx body is `{"code", "message", "request_id"}` (+ `details` for validation).
Views are wrapped by `chalicelib.routing.Router`; the request middleware in `app.py` also rewrites the
few answers Chalice produces itself (405, 415) into the same shape.
"""
from __future__ import annotations

import json
from typing import Any

from chalice import Response
from chalice.app import ChaliceViewError

from chalicelib.errors import ZemeowError

_CHALICE_CODES = {
    "BadRequestError": "bad_request",
    "UnauthorizedError": "unauthorized",
    "ForbiddenError": "forbidden",
    "NotFoundError": "not_found",
    "ConflictError": "conflict",
    "UnprocessableEntityError": "validation_failed",
    "TooManyRequestsError": "too_many_requests",
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "RequestTimeoutError": "timeout",
    "InternalServerError": "internal_error",
}


def error_body(code: str, message: str, request_id: str | None, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        body["details"] = details
    return body


def error_response(exc: BaseException, request_id: str | None) -> Response:
    headers = {"Content-Type": "application/json"}
    if isinstance(exc, ZemeowError):
        status, body = exc.status, error_body(exc.code, exc.message, request_id, exc.details)
        headers.update(exc.headers)
    elif isinstance(exc, ChaliceViewError):
        code = _CHALICE_CODES.get(exc.__class__.__name__, "error")
        message = str(exc).split(": ", 1)[-1]
        if code == "bad_request" and "JSON" in message:
            code, message = "invalid_json", "request body is not valid JSON"
        status, body = exc.STATUS_CODE, error_body(code, message, request_id)
    else:
        status, body = 500, error_body("internal_error", "an internal error occurred", request_id)
    return Response(body=body, status_code=status, headers=headers)


def normalise_chalice_error(response: Response, request_id: str | None) -> Response:
    """Rewrite Chalice's own `{"Code", "Message"}` bodies into the contract's shape."""
    if response.status_code < 400:
        return response
    body = response.body
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except (ValueError, TypeError):
            return response
    if isinstance(body, dict) and "Code" in body and "code" not in body:
        code = _CHALICE_CODES.get(body["Code"], "error")
        response.body = error_body(code, str(body.get("Message", "")), request_id)
        response.headers["Content-Type"] = "application/json"
    return response
