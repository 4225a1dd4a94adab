"""Secrets in an export, sealed with a passphrase the caller gives (never stored, never logged).

Construction (standard parts from `cryptography`, described in the README, "Export and
import"): key = scrypt(passphrase UTF-8, salt = 16 random bytes, N = 2^15, r = 8, p = 1,
length 32); each session's secrets, as compact JSON, are encrypted with AES-256-GCM under
that key with a 12-byte random nonce and the associated data `zemeow-export-v1:<session_id>`
(a sealed block moved onto another session of the document does not open). One salt (one
key derivation) per document: an export of 1,000 sessions derives once. A wrong passphrase
or a changed byte fails the GCM tag: `SealBroken`, nothing is half-read.
"""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

KDF = "scrypt"
CIPHER = "AES-256-GCM"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
MIN_PASSPHRASE_CHARS = 12
# an imported document may ask for more work than ours (2^18 = N*r*p), not unbounded work:
# memory is 128*N*r bytes (at most 128 MiB here), time grows with N*r*p
MAX_SCRYPT_NR, MAX_SCRYPT_NRP = 2 ** 20, 2 ** 21


class SealBroken(Exception):
    """Wrong passphrase, or a sealed block that was changed or moved."""


class UnsupportedSeal(Exception):
    """The document's encryption parameters are not ones we open (unknown, or too costly)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _aad(session_id: str) -> bytes:
    return f"zemeow-export-v1:{session_id}".encode()


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt  # noqa: PLC0415 - only exports need it

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


@dataclass
class Sealer:
    """Seals (export) or opens (import) the secrets of one document's sessions."""

    parameters: dict[str, Any]
    _key: bytes

    @classmethod
    def new(cls, passphrase: str) -> "Sealer":
        salt = os.urandom(16)
        parameters = {"kdf": KDF, "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt), "cipher": CIPHER}
        return cls(parameters, _derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))

    @classmethod
    def for_document(cls, passphrase: str, parameters: dict[str, Any]) -> "Sealer":
        if parameters.get("kdf") != KDF or parameters.get("cipher") != CIPHER:
            raise UnsupportedSeal(f"unknown encryption: {parameters.get('kdf')} / {parameters.get('cipher')}")
        try:
            n, r, p = int(parameters["n"]), int(parameters["r"]), int(parameters["p"])
            salt = base64.b64decode(parameters["salt"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnsupportedSeal("the scrypt parameters are incomplete or malformed") from exc
        if n < 2 or n & (n - 1) or r < 1 or p < 1 or n * r > MAX_SCRYPT_NR or n * r * p > MAX_SCRYPT_NRP:
            raise UnsupportedSeal(f"scrypt N must be a power of two, N*r at most {MAX_SCRYPT_NR} and N*r*p "
                                  f"at most {MAX_SCRYPT_NRP}")
        if len(salt) < 8:
            raise UnsupportedSeal("the scrypt salt must be at least 8 bytes")
        return cls(dict(parameters), _derive(passphrase, salt, n, r, p))

    def seal(self, session_id: str, secrets: dict[str, Any]) -> dict[str, str]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        nonce = os.urandom(12)
        plaintext = json.dumps(secrets, separators=(",", ":"), sort_keys=True).encode()
        return {"nonce": _b64(nonce), "ciphertext": _b64(AESGCM(self._key).encrypt(nonce, plaintext, _aad(session_id)))}

    def open(self, session_id: str, sealed: dict[str, str]) -> dict[str, Any]:
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        try:
            plaintext = AESGCM(self._key).decrypt(base64.b64decode(sealed["nonce"]),
                                                  base64.b64decode(sealed["ciphertext"]), _aad(session_id))
        except (InvalidTag, ValueError, KeyError) as exc:
            raise SealBroken(f"the secrets of session '{session_id}' do not open with this passphrase") from exc
        return json.loads(plaintext)
