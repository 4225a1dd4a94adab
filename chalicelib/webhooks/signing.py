"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

Headers: `webhook-id` (the event id, the same on every retry: receivers dedupe on it),
`webhook-timestamp` (unix seconds of this attempt), `webhook-signature`:
`v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, one per active secret,
space-separated (during a secret rotation both the old and the new secret sign).

A secret `whsec_<base64>` signs with the base64-decoded bytes, as the spec and its
libraries do. The API accepts only that form for custom secrets
(`chalicelib.schemas.sessions.check_webhook_secret`); a secret of another form stored
before that check is still tried as base64 first, then used as its UTF-8 bytes, so its
receiver keeps working.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any, Iterable

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    text = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        if key:
            return key
    except (binascii.Error, ValueError):
        pass
    return secret.encode()


def encode_body(envelope: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, UTF-8."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(secrets: Iterable[str], msg_id: str, body: bytes,
                      timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signatures = " ".join(sign(s, msg_id, ts, body) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signatures,
    }
