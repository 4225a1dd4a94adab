"""What the new WhatsApp events cost the runner's event thread: translations per second
of a plain text message (the baseline, measured in the same run), an edit, a revoke by a
group admin and a poll vote (HKDF + AES-GCM with the poll's secret, then option names),
from real neonize protobuf events, in this process:

    .venv/bin/python bench/translate_events.py            # 20,000 of each, interleaved rounds
    .venv/bin/python bench/translate_events.py --count 5000

Prints events/s and microseconds per event for each, and each one's ratio to the baseline.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neonize.events import MessageEv
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from runner_container import poll_crypto
from runner_container.translate import translate

GROUP = JID(User="120363000000000000", Server="g.us")
ANA = JID(User="5511999990000", Server="s.whatsapp.net")
BIA = JID(User="5511888880000", Server="s.whatsapp.net")


def _event(message, sender, edit=""):
    return MessageEv(Info=MessageInfo(ID="3EB0X", Timestamp=1767225600, Edit=edit, MessageSource=MessageSource(
        Chat=GROUP, Sender=sender, IsGroup=True)), Message=message)


def cases():
    secret = os.urandom(32)
    payload, iv = poll_crypto.encrypt_vote(secret, "P1", "5511999990000@s.whatsapp.net",
                                           "5511888880000@s.whatsapp.net", ["b"])
    polls = {"P1": {"creator_jid": "5511999990000@s.whatsapp.net", "secret": secret, "options": ["a", "b", "c"]}}
    edit = wa.ProtocolMessage(key=MessageKey(ID="3EB0OLD"), type=wa.ProtocolMessage.MESSAGE_EDIT,
                              editedMessage=wa.Message(conversation="fixed"))
    revoke = wa.ProtocolMessage(key=MessageKey(ID="3EB0BAD", participant="5511999990000@s.whatsapp.net"),
                                type=wa.ProtocolMessage.REVOKE)
    vote = wa.PollUpdateMessage(pollCreationMessageKey=MessageKey(
        remoteJID="120363000000000000@g.us", ID="P1", participant="5511999990000@s.whatsapp.net"),
        vote=wa.PollEncValue(encPayload=payload, encIV=iv))
    return {
        "text (baseline)": (_event(wa.Message(conversation="hello"), ANA), {}),
        "edit": (_event(wa.Message(editedMessage=wa.FutureProofMessage(message=wa.Message(protocolMessage=edit))),
                        ANA, "1"), {}),
        "revoke by admin": (_event(wa.Message(protocolMessage=revoke), BIA, "8"), {}),
        "poll vote": (_event(wa.Message(pollUpdateMessage=vote), BIA), {"polls": polls.get}),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    per_round = max(1, args.count // args.rounds)
    built = cases()
    samples: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(args.rounds):  # interleaved, so a busy neighbour slows every case alike
        for name, (event, kw) in built.items():
            start = time.perf_counter()
            for _ in range(per_round):
                translate(event, **kw)
            samples[name].append((time.perf_counter() - start) / per_round)
    base = statistics.median(samples["text (baseline)"])
    for name, values in samples.items():
        each = statistics.median(values)
        print(f"{name:16s} {1 / each:9.0f} events/s  {each * 1e6:7.1f} us each  {each / base:5.2f}x baseline")


if __name__ == "__main__":
    main()
