"""Secrets at rest: AES-GCM bound to its session, refusing tampering and other keys."""
from __future__ import annotations

import pytest

from chalicelib.crypto import DecryptionError, SecretBox


def test_round_trip_and_fresh_nonce():
    box = SecretBox("k" * 32)
    one = box.encrypt("whsec_secret", context="webhook:s1")
    two = box.encrypt("whsec_secret", context="webhook:s1")
    assert one != two and b"whsec_secret" not in one
    assert box.decrypt(one, context="webhook:s1") == "whsec_secret"


@pytest.mark.parametrize("mutate", [
    lambda blob, box: box.decrypt(blob, context="webhook:other-session"),
    lambda blob, box: SecretBox("another key").decrypt(blob, context="webhook:s1"),
    lambda blob, box: box.decrypt(blob[:-1] + bytes([blob[-1] ^ 1]), context="webhook:s1"),
    lambda blob, box: box.decrypt(b"\x02" + blob[1:], context="webhook:s1"),
])
def test_wrong_context_key_or_bytes_are_refused(mutate):
    box = SecretBox("k" * 32)
    blob = box.encrypt("secret", context="webhook:s1")
    with pytest.raises(DecryptionError):
        mutate(blob, box)
