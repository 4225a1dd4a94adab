"""The one error hierarchy of zemeow.

Services raise these; `chalicelib.http_errors` maps them to HTTP responses in one place.
Each class carries the HTTP status and the contract's snake_case `code`.
"""
from __future__ import annotations

from typing import Any


class ZemeowError(Exception):
    status: int = 500
    code: str = "internal_error"

    headers: dict[str, str] = {}  # extra response headers (e.g. Retry-After)

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class BadRequest(ZemeowError):
    status = 400
    code = "bad_request"


class ValidationFailed(ZemeowError):
    """Well-formed JSON whose fields are wrong; `details` names each bad field."""

    status = 422
    code = "validation_failed"


class Unauthorized(ZemeowError):
    status = 401
    code = "unauthorized"


class Forbidden(ZemeowError):
    status = 403
    code = "forbidden"


class NotFound(ZemeowError):
    status = 404
    code = "not_found"


class SessionNotFound(NotFound):
    """The one answer for a session id that names no session (or one the caller cannot see)."""
    code = "session_not_found"

    def __init__(self, session_id: str, *, details: Any = None):
        super().__init__(f"session '{session_id}' does not exist", details=details)


class Conflict(ZemeowError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ZemeowError):
    status = 413
    code = "payload_too_large"


class RateLimited(ZemeowError):
    """Over a rate limit; answered with a `Retry-After` header and `retry_after_seconds`."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None):
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, code=code, details={"retry_after_seconds": self.retry_after, **(details or {})})
        self.headers = {**(headers or {}), "Retry-After": str(self.retry_after)}


class RunnerFailed(ZemeowError):
    """The runner executed the command and it failed (WhatsApp said no, bad state...)."""

    status = 502
    code = "runner_failed"


class DependencyUnavailable(ZemeowError):
    """A part we rely on (database, queue, runner) did not answer in time."""

    status = 503
    code = "dependency_unavailable"


class UpstreamTimeout(ZemeowError):
    status = 504
    code = "timeout"


class ConfigError(Exception):
    """Start-up configuration is wrong; the message names every bad variable."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
