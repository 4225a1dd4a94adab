"""Sessions: create, read, list, update, delete; secrets encrypted, keys hashed, events emitted.

Each mutation and its lifecycle event (`session.created`, `session.updated`,
`session.deleted`) are written in one transaction (the event into the outbox), and the
event is sent to the events queue after commit.
"""
from __future__ import annotations

import base64
import secrets
from typing import Any, Callable

import psycopg

from chalicelib.crypto import SecretBox
from chalicelib.db import Database
from chalicelib.errors import Conflict, SessionNotFound
from chalicelib.events import EventPublisher
from chalicelib.repositories.commands import CommandRepository
from chalicelib.repositories.devices import DeviceStore
from chalicelib.repositories.sessions import SessionRepository
from chalicelib.schemas.sessions import (BEHAVIOUR_FIELDS, NULLABLE_BEHAVIOUR, CreateSessionRequest, ListSessionsQuery, ProxyIn,
                                         UpdateSessionRequest, WebhookIn)
from chalicelib.services.auth import generate_session_key, key_digest
from chalicelib.proxy_config import PROXY_CONTEXT

WEBHOOK_CONTEXT = "webhook:{}"


def generate_webhook_secret() -> str:
    """Standard Webhooks form: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def generate_session_id() -> str:
    return "ses_" + secrets.token_hex(6)


def session_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON of a session: never the key digest, the proxy password or the secret."""
    endpoint_state = row.get("webhook_endpoint_state")
    if not row.get("webhook_url"):
        webhook_status = "inactive"
    elif endpoint_state == "disabled":
        webhook_status = "disabled"
    elif endpoint_state in ("open", "half_open"):
        webhook_status = "failing"
    else:
        webhook_status = "active"
    return {
        "id": str(row["id"]),
        "session_id": row["session_id"],
        "name": row["name"],
        "status": row["status"],
        "jid": row.get("jid"),
        "connected_at": row.get("connected_at"),
        "last_activity": row.get("last_activity"),
        "auto_reconnect": row["auto_reconnect"],
        "proxy": {
            "enabled": row["proxy_enabled"],
            "type": row.get("proxy_type"),
            "host": row.get("proxy_host"),
            "port": row.get("proxy_port"),
            "username": row.get("proxy_username"),
            "has_password": row.get("proxy_password_enc") is not None,
            "status": "active" if row["proxy_enabled"] else "inactive",
        },
        "webhook": {
            "url": row.get("webhook_url"),
            "events": list(row.get("webhook_events") or []),
            "last_sent": row.get("webhook_last_sent"),
            "status": webhook_status,
        },
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "metadata": row.get("metadata") or {},
        **{name: row.get(name) for name in BEHAVIOUR_FIELDS if row.get(name) is not None},
    }


class SessionService:
    def __init__(self, db: Database, repo: SessionRepository, events: EventPublisher,
                 secret_box: Callable[[], SecretBox],
                 check_webhook_url: Callable[[str], None] = lambda url: None,
                 check_proxy: Callable[[str, int], None] = lambda host, port: None,
                 before_delete: Callable[[str, dict[str, Any]], None] | None = None,
                 after_delete: Callable[[dict[str, Any]], None] | None = None,
                 commands: Any = None):
        self.db = db
        self.commands = commands  # CommandOutbox: a behaviour change is applied by the runner at once
        self.before_delete = before_delete
        self.after_delete = after_delete  # e.g. remove the session's media (best effort)
        self.repo = repo
        self.events = events
        self._secret_box = secret_box
        self.check_webhook_url = check_webhook_url
        self.check_proxy = check_proxy  # the network guard's proxy rules: 422 at save time

    # -- create -------------------------------------------------------------------------
    def create(self, request: CreateSessionRequest) -> dict[str, Any]:
        session_id = request.session_id or generate_session_id()
        api_key = request.api_key or generate_session_key()
        values: dict[str, Any] = {
            "session_id": session_id,
            "name": request.name,
            "api_key_hash": key_digest(api_key),
            "auto_reconnect": request.auto_reconnect,
            "metadata": request.metadata,
        }
        webhook_secret = None
        if request.webhook:
            webhook_values, webhook_secret = self.webhook_columns(session_id, request.webhook, existing=None)
            values.update(webhook_values)
        if request.proxy:
            values.update(self.proxy_columns(session_id, request.proxy, existing=None))
        row = self.insert_new(values, {"session_id": session_id, "name": request.name})
        created = {
            "session_id": row["session_id"],
            "id": str(row["id"]),
            "name": row["name"],
            "api_key": api_key,
            "status": row["status"],
            "created_at": row["created_at"],
        }
        if webhook_secret:
            created["webhook_secret"] = webhook_secret
        return created

    def insert_new(self, values: dict[str, Any], event: dict[str, Any], *,
                   key_taken: str = "a session already uses this api_key") -> dict[str, Any]:
        """The one way a session row is born (create and import): the row and its
        `session.created` event in one transaction, a unique violation named (409), the
        event sent after the commit."""
        session_id = values["session_id"]
        try:
            with self.db.connection() as conn, conn.transaction():
                row = self.repo.insert(conn, values)
                envelope = self.events.record(conn, session_id, "session.created", {**event, "status": row["status"]})
        except psycopg.errors.UniqueViolation as exc:
            constraint = getattr(exc.diag, "constraint_name", "") or ""
            if "api_key" in constraint:
                raise Conflict(key_taken, code="api_key_taken") from None
            raise Conflict(f"session_id '{session_id}' already exists", code="session_exists") from None
        self.events.send([envelope])
        return row

    # -- read ---------------------------------------------------------------------------
    def get(self, session_id: str) -> dict[str, Any]:
        row = self.repo.get(session_id)
        if row is None:
            raise SessionNotFound(session_id)
        return session_view(row)

    def list(self, query: ListSessionsQuery) -> dict[str, Any]:
        rows, total = self.repo.list(status=query.status, name=query.name, limit=query.limit,
                                     offset=query.offset)
        return {"sessions": [session_view(r) for r in rows], "total": total,
                "limit": query.limit, "offset": query.offset}

    # -- update -------------------------------------------------------------------------
    def update(self, session_id: str, request: UpdateSessionRequest) -> dict[str, Any]:
        with self.db.connection() as conn, conn.transaction():
            existing = self.repo.lock(conn, session_id)
            if existing is None:
                raise SessionNotFound(session_id)
            values, new_secret = self._columns(session_id, request, existing)
            envelope = None
            apply_row = None
            if values:
                self.repo.update(conn, session_id, values)
                changed = sorted({_public_field(column) for column in values})
                envelope = self.events.record(conn, session_id, "session.updated", {"changed": changed})
                if self.commands is not None and set(values) & set(BEHAVIOUR_FIELDS):
                    # the runner rereads the row now (without it: at its next reconcile)
                    apply_row, _ = self.commands.record(conn, session_id, "apply_settings", {})
        if envelope:
            self.events.send([envelope])
        if apply_row is not None:
            self.commands.send([apply_row])
        view = self.get(session_id)
        if new_secret:
            view["webhook_secret"] = new_secret
        return view

    def _columns(self, session_id: str, request: UpdateSessionRequest,
                 existing: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The columns the request changes (only the fields it gave), and a new webhook secret."""
        given = request.model_fields_set
        values: dict[str, Any] = {name: getattr(request, name)
                                  for name in ("name", "auto_reconnect", "metadata", *BEHAVIOUR_FIELDS)
                                  if name in given and getattr(request, name) is not None}
        values.update({name: None for name in NULLABLE_BEHAVIOUR if name in given and getattr(request, name) is None})
        new_secret = None
        if "webhook" in given:
            if request.webhook is None:
                values.update(webhook_url=None, webhook_events=[], webhook_secret_enc=None)
            else:
                webhook_values, new_secret = self.webhook_columns(session_id, request.webhook, existing)
                values.update(webhook_values)
        if "proxy" in given:
            if request.proxy is None:
                values.update(proxy_enabled=False, proxy_type=None, proxy_host=None, proxy_port=None,
                              proxy_username=None, proxy_password_enc=None)
            else:
                values.update(self.proxy_columns(session_id, request.proxy, existing))
        return values, new_secret

    # -- key rotation -------------------------------------------------------------------
    def rotate_key(self, session_id: str) -> dict[str, Any]:
        """A new key for a session whose key leaked, without unlinking its device.

        Only the digest is stored and every request looks it up (`AuthService` keeps no
        key -> session cache), so the old key is refused from the commit on, in every warm
        Lambda. The new key is answered once; the audit log records the rotation, not the key.
        """
        api_key = generate_session_key()
        with self.db.connection() as conn, conn.transaction():
            row = self.repo.replace_key_digest(conn, session_id, key_digest(api_key))
        if row is None:
            raise SessionNotFound(session_id)
        return {"session_id": row["session_id"], "api_key": api_key, "rotated_at": row["updated_at"]}

    # -- delete -------------------------------------------------------------------------
    def delete(self, session_id: str) -> None:
        if self.before_delete is not None:
            # a paired session is logged out by its runner first (bounded), so the phone
            # shows the device as unlinked rather than silently dead
            current = self.repo.get(session_id)
            if current is None:
                raise SessionNotFound(session_id)
            self.before_delete(session_id, current)
        with self.db.connection() as conn, conn.transaction():
            existing = self.repo.lock(conn, session_id)
            if existing is None:
                raise SessionNotFound(session_id)
            envelope = self.events.record(conn, session_id, "session.deleted",
                                          {"session_id": session_id, "jid": existing.get("jid")})
            CommandRepository.delete_for_session(conn, existing["id"])
            self.repo.bury(conn, existing)
            self.repo.delete(conn, session_id)
            if existing.get("jid"):
                DeviceStore.delete(conn, existing["jid"])
        self.events.send([envelope])
        if self.after_delete is not None:
            self.after_delete(existing)

    # -- columns (create, update, import) -----------------------------------------------
    def webhook_columns(self, session_id: str, webhook: WebhookIn,
                         existing: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
        self.check_webhook_url(webhook.url)
        values: dict[str, Any] = {"webhook_url": webhook.url, "webhook_events": webhook.events}
        shown = None
        if webhook.secret:
            secret = webhook.secret
        elif existing is not None and existing.get("webhook_secret_enc") is not None:
            return values, None  # keep the current secret
        else:
            secret = shown = generate_webhook_secret()
        values["webhook_secret_enc"] = self._secret_box().encrypt(secret, context=WEBHOOK_CONTEXT.format(session_id))
        return values, shown

    def proxy_columns(self, session_id: str, proxy: ProxyIn, existing: dict[str, Any] | None) -> dict[str, Any]:
        if proxy.enabled and proxy.host and proxy.port:
            self.check_proxy(proxy.host, proxy.port)
        values: dict[str, Any] = {
            "proxy_enabled": proxy.enabled, "proxy_type": proxy.type, "proxy_host": proxy.host,
            "proxy_port": proxy.port, "proxy_username": proxy.username,
        }
        if proxy.password:
            values["proxy_password_enc"] = self._secret_box().encrypt(
                proxy.password, context=PROXY_CONTEXT.format(session_id))
        elif "password" in proxy.model_fields_set or not _same_proxy_account(existing, proxy):
            # a stored password is kept only for the same proxy account: it must never be
            # sent to a host (or as a user) it was not given for
            values["proxy_password_enc"] = None
        return values


def _same_proxy_account(existing: dict[str, Any] | None, proxy: ProxyIn) -> bool:
    return existing is not None and all(existing.get(f"proxy_{name}") == getattr(proxy, name)
                                        for name in ("type", "host", "username"))


def _public_field(column: str) -> str:
    for prefix in ("webhook", "proxy"):
        if column.startswith(prefix):
            return prefix
    return column

