"""Who is calling: the admin key, a session key, or nobody.

Keys arrive as `Authorization: Bearer <key>` or `X-API-Key: <key>`. The admin key comes
from ADMIN_API_KEY or the Secrets Manager secret named by ADMIN_API_KEY_SECRET_ARN
(cached for a few minutes, so a rotation reaches every warm Lambda). A session key is
looked up by its SHA-256 digest (indexed, unique); the digest, never the key, is stored.
Comparisons are constant-time. Keys are never logged.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from chalicelib.errors import DependencyUnavailable, Forbidden, Unauthorized

ADMIN = "admin"
SESSION = "session"
SECRET_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Principal:
    kind: str  # ADMIN or SESSION
    session_id: str | None = None
    session_uid: str | None = None  # the session row's id (`sessions.id`): what per-key state is keyed by
    charge: Any = field(default=None, compare=False, repr=False)  # this request's rate-limit charge, when the
    # key's lookup already made it (chalicelib/services/api_limits.py)

    @property
    def is_admin(self) -> bool:
        return self.kind == ADMIN

    @property
    def actor(self) -> str:
        return "admin" if self.is_admin else f"session:{self.session_id}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_session_key() -> str:
    """256 bits from the OS CSPRNG, URL-safe, with a prefix that tells what it is."""
    return "zses_" + secrets.token_urlsafe(32)


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization") or ""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = (headers.get("x-api-key") or "").strip()
    return api_key or None


class SecretSource:
    """A secret given directly (environment) or read from Secrets Manager, cached briefly."""

    def __init__(self, name: str, value: str | None, secret_arn: str | None,
                 secrets_client_factory: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        self.name = name
        self._value = value
        self._arn = secret_arn
        self._client_factory = secrets_client_factory
        self._clock = clock
        self._cached: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def get(self) -> str | None:
        if self._value:
            return self._value
        if not self._arn:
            return None
        with self._lock:
            if self._cached and self._clock() - self._cached[1] < SECRET_CACHE_SECONDS:
                return self._cached[0]
            try:
                value = self._client_factory().get_secret_value(SecretId=self._arn)["SecretString"]
            except Exception as exc:
                raise DependencyUnavailable(f"the {self.name} secret could not be read",
                                            code="secrets_unavailable") from exc
            self._cached = (value.strip(), self._clock())
            return self._cached[0]


class AuthService:
    def __init__(self, admin_keys: SecretSource, find_session_by_digest: Callable[[str], dict | None]):
        self.admin_keys = admin_keys
        self.find_session_by_digest = find_session_by_digest

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        key = key_from_headers(headers)
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                               code="missing_api_key")
        admin_key = self.admin_keys.get()
        if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
            return Principal(ADMIN)
        digest = key_digest(key)
        row = self.find_session_by_digest(digest)
        if row and hmac.compare_digest(row["api_key_hash"], digest):
            return Principal(SESSION, row["session_id"], str(row["id"]), charge=row.get("charge"))
        raise Unauthorized("unknown API key", code="invalid_api_key")

    @staticmethod
    def authorize(principal: Principal, access: str, session_id: str | None) -> None:
        """`access` is 'admin' (admin only) or 'session' (admin, or the session named in the path)."""
        if principal.is_admin:
            return
        if access == ADMIN:
            raise Forbidden("this route needs the admin key", code="admin_only")
        if session_id is None or principal.session_id != session_id:
            raise Forbidden("this key belongs to another session", code="wrong_session")
