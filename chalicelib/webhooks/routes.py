"""Where a session's webhook deliveries go: its URL, event patterns and signing secrets.

Read per session row id and cached CONFIG_TTL seconds. A deleted session's row id maps
to its tombstone; a new session reusing its session_id has another row id, so no cache
entry of one can ever route the other's events. `pattern_matches` is the one rule that
says whether an event goes to a session's webhook at all.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from chalicelib.crypto import DecryptionError, SecretBox
from chalicelib.repositories.webhooks import WebhookRepository

CONFIG_TTL = 5.0


def pattern_matches(patterns: list[str] | None, event: str) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        if pattern == "*" or pattern == event:
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


class SessionRoutes:
    def __init__(self, repo: WebhookRepository, secret_box: Callable[[], SecretBox], lock: threading.Lock,
                 logger: Any = None):
        self.repo = repo
        self._secret_box = secret_box
        self._lock = lock
        self.logger = logger
        self.cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    def configs(self, session_uids: set[str]) -> dict[str, dict[str, Any]]:
        """session row id -> {"session_id", "webhook_url", "webhook_events", "secrets"} (live rows only)."""
        now = time.monotonic()
        found: dict[str, dict[str, Any]] = {}
        missing = []
        with self._lock:
            for sid in session_uids:
                cached = self.cache.get(sid)
                if cached and cached[0] > now:
                    if cached[1] is not None:
                        found[sid] = cached[1]
                else:
                    missing.append(sid)
        if missing:
            loaded = self._load(missing)
            with self._lock:
                for sid, config in loaded.items():
                    self.cache[sid] = (now + CONFIG_TTL, config)
                    if config is not None:
                        found[sid] = config
        return found

    def _load(self, session_uids: list[str]) -> dict[str, dict[str, Any] | None]:
        rows = self.repo.session_configs(session_uids)
        loaded: dict[str, dict[str, Any] | None] = {}
        for sid in session_uids:
            row = rows.get(sid)
            loaded[sid] = None if row is None else {
                "session_id": row["session_id"], "webhook_url": row["webhook_url"],
                "webhook_events": list(row["webhook_events"] or []), "secrets": self._secrets(row)}
        return loaded

    def _secrets(self, row: dict[str, Any]) -> list[str]:
        """The current secret, then every previous one a rotation promised and whose expiry
        is still ahead: one `v1,` signature each (migration 0059)."""
        encrypted = [enc for enc in (row["webhook_secret_enc"], *row["webhook_secrets_live_enc"]) if enc is not None]
        if not encrypted:
            return []
        box = self._secret_box()
        context = f"webhook:{row['session_id']}"
        try:
            return [box.decrypt(enc, context=context) for enc in encrypted]
        except DecryptionError:  # ENCRYPTION_KEY changed: never send unsigned; say so loudly
            if self.logger:
                self.logger.error("webhook secret does not decrypt; deliveries skipped",
                                  extra={"session_id": row["session_id"]})
            return []

    def forget_session(self, session_id: str) -> None:
        """Drop cached routing of every row that has (or had) this session_id."""
        with self._lock:
            for uid in [uid for uid, (_, config) in self.cache.items()
                        if config is not None and config.get("session_id") == session_id]:
                del self.cache[uid]
