"""Checks several services make before they queue work for the runner."""
from __future__ import annotations

from typing import Any

from chalicelib.errors import Conflict, SessionNotFound
from chalicelib.repositories.sessions import SessionRepository

LOGGED_IN_STATUSES = ("authenticated",)


def require_logged_in(sessions: SessionRepository, session_id: str, *, before: str = "first") -> dict[str, Any]:
    """The session's row (`id`, `session_id`, `status`) when it is logged in to WhatsApp;
    404 `session_not_found` or 409 `not_connected` otherwise, so nothing is queued that the
    runner could only fail."""
    session = sessions.status_of(session_id)
    if session is None:
        raise SessionNotFound(session_id)
    if session["status"] not in LOGGED_IN_STATUSES:
        raise Conflict(f"session '{session_id}' is {session['status']}; connect and pair it {before}",
                       code="not_connected")
    return session
