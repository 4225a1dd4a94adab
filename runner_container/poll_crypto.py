"""Poll votes: WhatsApp end-to-end encrypts a vote a second time, with the poll's secret.

A poll is sent with a random 32-byte `messageContextInfo.messageSecret`. A vote
(`pollUpdateMessage`) carries `PollVoteMessage{selectedOptions: [sha256(option name)]}`
encrypted with AES-256-GCM under a key derived from that secret, as whatsmeow's
`generateMsgSecretKey` / `DecryptPollVote` (msgsecret.go) do:

    key  = HKDF-SHA256(secret, salt=None, info=poll_id + creator + voter + "Poll Vote", 32 bytes)
    aad  = poll_id + "\\x00" + voter
    plain = AES-GCM(key).decrypt(encIV, encPayload, aad)

where `creator` and `voter` are non-device JID strings (`5511...@s.whatsapp.net`). The
runner keeps each poll's secret and option names (`PollStore`), so a vote is turned into
option *names* even after a restart. `encrypt_vote` is the voter's side (the emulator
plays a voting phone with it).
"""
from __future__ import annotations

import hashlib
import os
from typing import Iterable, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import PollVoteMessage

POLL_VOTE = "Poll Vote"


def non_ad(jid: str) -> str:
    """`5511...:12@s.whatsapp.net` -> `5511...@s.whatsapp.net` (whatsmeow's JID.ToNonAD)."""
    user, _, server = jid.partition("@")
    return f"{user.split(':')[0]}@{server}" if server else user.split(":")[0]


def _key(secret: bytes, poll_id: str, creator: str, voter: str) -> tuple[bytes, bytes]:
    creator, voter = non_ad(creator), non_ad(voter)
    info = (poll_id + creator + voter + POLL_VOTE).encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    return key, f"{poll_id}\x00{voter}".encode()


def option_hash(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def encrypt_vote(secret: bytes, poll_id: str, creator: str, voter: str, selected: Iterable[str],
                 iv: Optional[bytes] = None) -> tuple[bytes, bytes]:
    """(encPayload, encIV) of a vote for the option names `selected` (whatsmeow's EncryptPollVote)."""
    plain = PollVoteMessage(selectedOptions=[option_hash(name) for name in selected]).SerializeToString()
    key, aad = _key(secret, poll_id, creator, voter)
    iv = iv or os.urandom(12)
    return AESGCM(key).encrypt(iv, plain, aad), iv


def decrypt_vote(secret: bytes, poll_id: str, creators: Iterable[str], voters: Iterable[str],
                 payload: bytes, iv: bytes) -> Optional[list[bytes]]:
    """The selected option hashes, or None when no (creator, voter) pair opens the vote.

    A JID may be seen as a phone number by one side and as a LID by the other, so the
    caller passes every form it knows of each; GCM's tag tells the right pair."""
    for creator in dict.fromkeys(c for c in creators if c):
        for voter in dict.fromkeys(v for v in voters if v):
            key, aad = _key(secret, poll_id, creator, voter)
            try:
                plain = AESGCM(key).decrypt(iv, payload, aad)
            except (InvalidTag, ValueError):
                continue
            return list(PollVoteMessage.FromString(plain).selectedOptions)
    return None


def option_names(options: list[str], hashes_selected: list[bytes]) -> list[str]:
    """The names of the selected hashes, in the poll's order (an unknown hash is left out)."""
    chosen = set(hashes_selected)
    return [name for name in options if option_hash(name) in chosen]
