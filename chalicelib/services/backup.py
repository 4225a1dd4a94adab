"""Export and import of session configuration: the seed's backup feature.

An export carries what an operator configured: name, webhook (URL, events), proxy (no
password), auto_reconnect, metadata. Secrets (webhook secret, proxy password, the key's
SHA-256 digest) only when asked for, sealed with the caller's passphrase
(`chalicelib/passphrase_seal.py`); never in plaintext. The WhatsApp device (whatsmeow's
keys) is not exported: it is WhatsApp's identity of a linked device, and two live copies
of it would fight over one login (see the README).

An import creates each session as a new row (a new `sessions.id`: nothing of a session
that once had the same session_id comes with it) in its own transaction with its
`session.created` event, and answers per session: created (a new key shown once, or the
exported key digest kept so the old key works), conflict (session_id or key already
there) or failed (e.g. a webhook URL refused). A wrong passphrase refuses the whole
document before anything is created. The passphrase is never stored, logged or audited.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable

import psycopg

from chalicelib.crypto import SecretBox
from chalicelib.db import Database
from chalicelib.errors import Conflict, SessionNotFound, ValidationFailed, ZemeowError
from chalicelib.events import EventPublisher
from chalicelib.passphrase_seal import MIN_PASSPHRASE_CHARS, SealBroken, Sealer, UnsupportedSeal
from chalicelib.repositories.sessions import SessionRepository
from chalicelib.services.auth import generate_session_key, key_digest
from chalicelib.services.sessions import PROXY_CONTEXT, WEBHOOK_CONTEXT, generate_webhook_secret
from chalicelib.schemas.sessions import BEHAVIOUR_FIELDS

PASSPHRASE_HEADER = "X-Export-Passphrase"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _passphrase_problem(code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code,
                            details=[{"field": f"header.{PASSPHRASE_HEADER}", "message": message, "type": code}])


def check_passphrase(passphrase: str | None) -> str:
    if not passphrase:
        raise _passphrase_problem("passphrase_required",
                                  f"secrets are sealed with a passphrase: send it in the {PASSPHRASE_HEADER} header")
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise _passphrase_problem("weak_passphrase", f"the passphrase needs at least {MIN_PASSPHRASE_CHARS} characters")
    return passphrase


class SessionBackup:
    def __init__(self, db: Database, repo: SessionRepository, events: EventPublisher,
                 secret_box: Callable[[], SecretBox], check_webhook_url: Callable[[str], None]):
        self.db = db
        self.repo = repo
        self.events = events
        self._secret_box = secret_box
        self.check_webhook_url = check_webhook_url

    # -- export -------------------------------------------------------------------------
    def export_one(self, session_id: str, *, include_secrets: bool, passphrase: str | None) -> dict[str, Any]:
        sealer = Sealer.new(check_passphrase(passphrase)) if include_secrets else None
        row = self.repo.get(session_id)
        if row is None:
            raise SessionNotFound(session_id)
        return self._document([row], sealer)

    def export_all(self, *, include_secrets: bool, passphrase: str | None, limit: int, offset: int) -> dict[str, Any]:
        sealer = Sealer.new(check_passphrase(passphrase)) if include_secrets else None
        rows, total = self.repo.list(status=None, name=None, limit=limit, offset=offset)
        following = offset + len(rows)
        return self._document(rows, sealer, total=total, offset=offset,
                              next_offset=following if following < total else None)

    def _document(self, rows: list[dict[str, Any]], sealer: Sealer | None, **page: Any) -> dict[str, Any]:
        return {"format": "zemeow.sessions", "version": 1, "exported_at": datetime.now(timezone.utc), **page,
                "encryption": sealer.parameters if sealer else None,
                "sessions": [self._exported(row, sealer) for row in rows]}

    def _exported(self, row: dict[str, Any], sealer: Sealer | None) -> dict[str, Any]:
        session_id = row["session_id"]
        exported: dict[str, Any] = {
            "session_id": session_id, "name": row["name"], "auto_reconnect": row["auto_reconnect"],
            "metadata": row.get("metadata") or {},
            "webhook": {"url": row["webhook_url"], "events": list(row.get("webhook_events") or [])}
            if row.get("webhook_url") else None,
            "proxy": {name: row.get(f"proxy_{name}") for name in ("enabled", "type", "host", "port", "username")}
            if row.get("proxy_host") else None,
            "behaviour": {name: row.get(name) for name in BEHAVIOUR_FIELDS},
        }
        if sealer is not None:
            secrets: dict[str, Any] = {"api_key_digest": row["api_key_hash"]}
            if row.get("webhook_secret_enc") is not None:
                secrets["webhook_secret"] = self._secret_box().decrypt(
                    row["webhook_secret_enc"], context=WEBHOOK_CONTEXT.format(session_id))
            if row.get("proxy_password_enc") is not None:
                secrets["proxy_password"] = self._secret_box().decrypt(
                    row["proxy_password_enc"], context=PROXY_CONTEXT.format(session_id))
            exported["secrets"] = sealer.seal(session_id, secrets)
        return exported

    # -- import -------------------------------------------------------------------------
    def import_document(self, document: Any, passphrase: str | None) -> dict[str, Any]:
        """`document`: a validated `chalicelib.schemas.backup.ExportDocument`."""
        opened = self._open_secrets(document, passphrase)
        results, seen = [], set()
        for session in document.sessions:
            if session.session_id in seen:
                results.append({"session_id": session.session_id, "status": "conflict", "code": "duplicate_in_document",
                                "message": f"session_id '{session.session_id}' appears twice in the document"})
                continue
            seen.add(session.session_id)
            try:
                results.append(self._create(session, opened.get(session.session_id)))
            except ZemeowError as exc:
                status = "conflict" if exc.status == 409 else "failed"
                results.append({"session_id": session.session_id, "status": status, "code": exc.code,
                                "message": exc.message})
        count = {status: sum(1 for r in results if r["status"] == status) for status in ("created", "conflict", "failed")}
        return {"created": count["created"], "conflicts": count["conflict"], "failed": count["failed"],
                "results": results}

    def _open_secrets(self, document: Any, passphrase: str | None) -> dict[str, dict[str, Any]]:
        sealed = [s for s in document.sessions if s.secrets is not None]
        if not sealed:
            return {}
        if document.encryption is None:
            raise ValidationFailed("sessions carry sealed secrets but the document has no 'encryption'",
                                   code="encryption_missing",
                                   details=[{"field": "encryption", "message": "required with secrets", "type": "missing"}])
        try:
            sealer = Sealer.for_document(check_passphrase(passphrase), document.encryption.model_dump())
            return {s.session_id: sealer.open(s.session_id, s.secrets.model_dump()) for s in sealed}
        except UnsupportedSeal as exc:
            raise ValidationFailed(f"{exc}; nothing was imported", code="unsupported_encryption",
                                   details=[{"field": "encryption", "message": str(exc),
                                             "type": "unsupported_encryption"}]) from None
        except SealBroken as exc:
            raise _passphrase_problem("wrong_passphrase", f"{exc}; nothing was imported") from None

    def _create(self, session: Any, secrets: dict[str, Any] | None) -> dict[str, Any]:
        secrets = secrets or {}
        session_id = session.session_id
        if self.repo.status_of(session_id) is not None:  # a conflict, whatever else is wrong with it
            raise Conflict(f"session_id '{session_id}' already exists", code="session_exists")
        result: dict[str, Any] = {"session_id": session_id, "status": "created"}
        digest = secrets.get("api_key_digest")
        if isinstance(digest, str) and _DIGEST.match(digest):
            result["key_kept"] = True
        else:
            result["api_key"] = generate_session_key()
            result["key_kept"] = False
            digest = key_digest(result["api_key"])
        values: dict[str, Any] = {"session_id": session_id, "name": session.name, "api_key_hash": digest,
                                  "auto_reconnect": session.auto_reconnect, "metadata": session.metadata}
        if session.behaviour is not None:
            values.update({name: value for name, value in session.behaviour.model_dump().items() if value is not None})
        box = self._secret_box
        if session.webhook is not None:
            self.check_webhook_url(session.webhook.url)
            secret = secrets.get("webhook_secret")
            if not secret:
                secret = result["webhook_secret"] = generate_webhook_secret()
            values.update(webhook_url=session.webhook.url, webhook_events=session.webhook.events,
                          webhook_secret_enc=box().encrypt(secret, context=WEBHOOK_CONTEXT.format(session_id)))
        if session.proxy is not None:
            proxy = session.proxy
            values.update(proxy_enabled=proxy.enabled, proxy_type=proxy.type, proxy_host=proxy.host,
                          proxy_port=proxy.port, proxy_username=proxy.username)
            if secrets.get("proxy_password"):
                values["proxy_password_enc"] = box().encrypt(secrets["proxy_password"],
                                                             context=PROXY_CONTEXT.format(session_id))
        try:
            with self.db.connection() as conn, conn.transaction():
                row = self.repo.insert(conn, values)
                envelope = self.events.record(conn, session_id, "session.created",
                                              {"session_id": session_id, "name": session.name,
                                               "status": row["status"], "imported": True})
        except psycopg.errors.UniqueViolation as exc:
            constraint = getattr(exc.diag, "constraint_name", "") or ""
            if "api_key" in constraint:
                raise Conflict("a session already uses this key (its digest was exported)", code="api_key_taken") from None
            raise Conflict(f"session_id '{session_id}' already exists", code="session_exists") from None
        self.events.send([envelope])
        result["id"] = str(row["id"])
        return result
