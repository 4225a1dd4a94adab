"""poll_secrets (migration 0074): a poll's secret and options are kept per session row, so
a vote arriving later (another runner, after a restart) is read through the neonize
driver's own event handler; rows go after POLL_RETENTION and with their session."""
from __future__ import annotations

import os
from types import SimpleNamespace

from neonize.events import MessageEv
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa

from chalicelib.repositories.polls import PollStore
from chalicelib.services.retention import RetentionService
from runner_container import poll_crypto
from runner_container.drivers.base import SessionConfig
from runner_container.drivers.neonize_driver import NeonizeClient

ANA = JID(User="5511999990000", Server="s.whatsapp.net", IsEmpty=False)
BIA = JID(User="5511888880000", Server="s.whatsapp.net", IsEmpty=False)
GROUP = JID(User="120363000000000000", Server="g.us", IsEmpty=False)


def _event(body, sender, msg_id):
    return MessageEv(Info=MessageInfo(ID=msg_id, Timestamp=1767225600, MessageSource=MessageSource(
        Chat=GROUP, Sender=sender, IsGroup=True)), Message=body)


def _client(db, session_uid, seen):
    driver = SimpleNamespace(neonize_url="postgres://x", polls=PollStore(db))
    return NeonizeClient(driver, SessionConfig("polls-1", None, None, session_uid=session_uid),
                         lambda kind, data: seen.append(data))


def test_a_vote_is_read_by_a_client_that_never_saw_the_poll(make_session, db):
    uid = make_session(name="polls")["id"]
    secret = os.urandom(32)
    poll = wa.Message(pollCreationMessage=wa.PollCreationMessage(
        name="Lunch?", options=[wa.PollCreationMessage.Option(optionName=n) for n in ("pizza", "sushi")]),
        messageContextInfo=wa.MessageContextInfo(messageSecret=secret))
    seen: list = []
    _client(db, uid, seen)._on_event(None, _event(poll, ANA, "3EB0POLL"))
    assert seen[0]["data"]["type"] == "poll"
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM poll_secrets WHERE session_uid = %s", (uid,)).fetchone()
    assert (row["poll_id"], row["creator_jid"], bytes(row["secret"]), row["options"]) == (
        "3EB0POLL", "5511999990000@s.whatsapp.net", secret, ["pizza", "sushi"])

    payload, iv = poll_crypto.encrypt_vote(secret, "3EB0POLL", "5511999990000@s.whatsapp.net",
                                           "5511888880000@s.whatsapp.net", ["sushi"])
    vote = wa.Message(pollUpdateMessage=wa.PollUpdateMessage(
        pollCreationMessageKey=MessageKey(remoteJID="120363000000000000@g.us", ID="3EB0POLL",
                                          participant="5511999990000@s.whatsapp.net"),
        vote=wa.PollEncValue(encPayload=payload, encIV=iv)))
    later: list = []
    _client(db, uid, later)._on_event(None, _event(vote, BIA, "3EB0VOTE"))  # a fresh client: a restart
    assert later[0]["event"] == "poll.vote" and later[0]["data"]["options"] == ["sushi"]
    # another session row never reads this session's polls
    other: list = []
    _client(db, make_session(name="other")["id"], other)._on_event(None, _event(vote, BIA, "3EB0VOTE"))
    assert other[0]["data"]["error"] == "poll_unknown"


def test_poll_secrets_are_pruned_after_poll_retention_and_go_with_the_session(container, make_session, db, api,
                                                                              admin_headers):
    created = make_session(name="prune")
    store = PollStore(db)
    for poll_id in ("OLD", "NEW"):
        store.remember(created["id"], {"poll_id": poll_id, "chat_jid": "1@g.us", "creator_jid": "2@s.whatsapp.net",
                                       "secret": b"s" * 32, "name": "q", "options": ["a", "b"]})
    with db.connection() as conn:
        conn.execute("UPDATE poll_secrets SET created_at = now() - interval '91 days' WHERE poll_id = 'OLD'")
    report = RetentionService(db, container.settings.retention, batch_size=100).run()
    assert report.deleted.get("poll_secrets", 0) >= 1
    assert store.find(created["id"], "OLD") is None and store.find(created["id"], "NEW") is not None
    assert api.delete(f"/sessions/{created['session_id']}", headers=admin_headers).status_code in (200, 202, 204)
    assert store.find(created["id"], "NEW") is None
