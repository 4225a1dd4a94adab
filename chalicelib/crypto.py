"""Secrets at rest: AES-256-GCM with a key derived from ENCRYPTION_KEY.

Stored form: 1 version byte, 12-byte random nonce, ciphertext+tag. The session id is
bound as associated data, so a ciphertext copied onto another session's row does not
decrypt. Any string works as ENCRYPTION_KEY (HKDF-SHA256 turns it into 32 bytes); in
AWS it comes from the Secrets Manager secret of infra/messaging.yaml.
"""
from __future__ import annotations

import os

_VERSION = b"\x01"


class DecryptionError(Exception):
    pass


class SecretBox:
    def __init__(self, key_material: str):
        # imported here: most requests never touch a secret, and cryptography is slow to import
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

        if not key_material:
            raise ValueError("ENCRYPTION_KEY is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"zemeow-secrets-v1",
                   info=b"aes-256-gcm").derive(key_material.encode())
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        blob = bytes(blob)
        if not blob or blob[:1] != _VERSION:
            raise DecryptionError("unknown ciphertext version")
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415

        try:
            return self._aead.decrypt(blob[1:13], blob[13:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not match the key or the context") from exc
