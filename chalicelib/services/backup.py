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

from chalicelib.crypto import DecryptionError, SecretBox
from chalicelib.errors import Conflict, SessionNotFound, ValidationFailed, ZemeowError
from chalicelib.passphrase_seal import MIN_PASSPHRASE_CHARS, SealBroken, Sealer, UnsupportedSeal
from chalicelib.schemas.sessions import BEHAVIOUR_FIELDS, WebhookIn
from chalicelib.services.auth import generate_session_key, key_digest
from chalicelib.services.sessions import PROXY_CONTEXT, WEBHOOK_CONTEXT, SessionService

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
    def __init__(self, sessions: SessionService, secret_box: Callable[[], SecretBox]):
        self.sessions = sessions  # creates the imported rows, exactly as POST /sessions does
        self.repo = sessions.repo
        self._secret_box = secret_box

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
        warnings: list[dict[str, Any]] = []
        document = {"format": "zemeow.sessions", "version": 1, "exported_at": datetime.now(timezone.utc), **page,
                    "encryption": sealer.parameters if sealer else None,
                    "sessions": [self._exported(row, sealer, warnings) for row in rows]}
        if warnings:
            document["warnings"] = warnings
        return document

    def _exported(self, row: dict[str, Any], sealer: Sealer | None, warnings: list[dict[str, Any]]) -> dict[str, Any]:
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
            for name, column, context in (("webhook_secret", "webhook_secret_enc", WEBHOOK_CONTEXT),
                                          ("proxy_password", "proxy_password_enc", PROXY_CONTEXT)):
                if row.get(column) is None:
                    continue
                try:
                    secrets[name] = self._secret_box().decrypt(row[column], context=context.format(session_id))
                except DecryptionError:  # one unreadable secret must not sink the whole export
                    warnings.append({"session_id": session_id, "code": "secret_unreadable", "secret": name,
                                     "message": f"the {name.replace('_', ' ')} cannot be decrypted with the current "
                                                "ENCRYPTION_KEY (was it rotated?); exported without it, an import "
                                                "generates a new one"})
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
        """One session of the document, through the same column builders and insert as
        `POST /sessions`: the webhook URL and the proxy host meet the same network guards."""
        secrets = secrets or {}
        session_id = session.session_id
        if self.sessions.repo.status_of(session_id) is not None:  # a conflict, whatever else is wrong with it
            raise Conflict(f"session_id '{session_id}' already exists", code="session_exists")
        result: dict[str, Any] = {"session_id": session_id, "status": "created"}
        digest = _kept_or_new_key(secrets.get("api_key_digest"), result)
        values: dict[str, Any] = {"session_id": session_id, "name": session.name, "api_key_hash": digest,
                                  "auto_reconnect": session.auto_reconnect, "metadata": session.metadata}
        if session.behaviour is not None:
            values.update({name: value for name, value in session.behaviour.model_dump().items() if value is not None})
        if session.webhook is not None:
            # the sealed secret was ours when it was exported: kept as it is, not re-validated
            webhook = WebhookIn.model_construct(url=session.webhook.url, events=session.webhook.events,
                                                secret=secrets.get("webhook_secret") or None)
            webhook_values, shown = self.sessions.webhook_columns(session_id, webhook, existing=None)
            values.update(webhook_values)
            if shown:
                result["webhook_secret"] = shown
        if session.proxy is not None:
            proxy = session.proxy.model_copy(update={"password": secrets.get("proxy_password") or None})
            values.update(self.sessions.proxy_columns(session_id, proxy, existing=None))
        row = self.sessions.insert_new(values, {"session_id": session_id, "name": session.name, "imported": True},
                                       key_taken="a session already uses this key (its digest was exported)")
        result["id"] = str(row["id"])
        return result


def _kept_or_new_key(digest: Any, result: dict[str, Any]) -> str:
    """The exported key digest (the old key keeps working), or a new key shown once in `result`."""
    if isinstance(digest, str) and _DIGEST.match(digest):
        result["key_kept"] = True
        return digest
    result["api_key"] = generate_session_key()
    result["key_kept"] = False
    return key_digest(result["api_key"])
