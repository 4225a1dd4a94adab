"""The message store through the whole pipeline with the emulator: emulator -> runner ->
PostgreSQL (store + event outbox, one transaction) -> SQS -> webhook receiver (signatures
verified with `standardwebhooks`) and back out through the read API. History on scan goes
through a real neonize HistorySync protobuf (runner_container/drivers/emulator_history.py)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import module_runner, pair_with_emulator, wait_for

PEER = "5511912345678"
PEER_JID = f"{PEER}@s.whatsapp.net"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "store-e2e") as process:
        yield process


def _session(make_session, receiver, path):
    created = make_session(webhook={"url": receiver.url(path)})
    receiver.set_secrets(path, created["webhook_secret"])
    return created


def _get(api, created, path):
    answer = api.get(f"/sessions/{created['session_id']}{path}", headers=session_headers(created))
    assert answer.status_code == 200, (path, answer.body)
    return answer.json_body


def _delivered(receiver, path, event, count=1):
    receiver.wait_for(lambda: len([r for r in receiver.on(path) if r.json["event"] == event]) >= count, 30,
                      f"{event} at the receiver")
    hits = [r for r in receiver.on(path) if r.json["event"] == event]
    assert all(r.verified for r in hits), [r.verify_error for r in hits]
    return [r.json for r in hits]


def test_inbound_sent_receipts_and_reads_land_in_the_store_and_at_the_receiver(api, db, runner, make_session,
                                                                              receiver, bridge):
    created = _session(make_session, receiver, "/store")
    sid, headers = created["session_id"], session_headers(created)
    pair_with_emulator(api, runner, created, "5511999990031")

    status, inbound = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", {"from": PEER, "text": "oi!"})
    assert status == 200, inbound
    sent = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers,
                    body=json.dumps({"to": PEER, "type": "text", "text": "hello back",
                                     "quoted_message_id": inbound["message_id"]}))
    assert sent.status_code == 200, sent.body
    ours = sent.json_body["message_id"]
    wait_for(lambda: _get(api, created, "/chats")["chats"], message="the chat is stored")
    assert _get(api, created, "/chats")["chats"][0]["unread_count"] == 1  # the inbound one

    assert runner.emulator("POST", f"/emulator/sessions/{sid}/receipt", {"message_ids": [ours], "type": "read"})[0] == 200
    wait_for(lambda: _get(api, created, f"/messages/{ours}")["status"] == "read", message="the read receipt applied")
    read = api.post(f"/sessions/{sid}/read?wait=true", headers=headers,
                    body=json.dumps({"chat": PEER, "message_ids": [inbound["message_id"]]}))
    assert read.status_code == 200, read.body

    [chat] = _get(api, created, "/chats")["chats"]
    assert chat["jid"] == PEER_JID and chat["unread_count"] == 0 and chat["last_message"]["message_id"] == ours
    listed = _get(api, created, f"/chats/{PEER}/messages")["messages"]
    # newest first; WhatsApp's timestamps are whole seconds, so two in the same second come by id
    assert [m["timestamp"] for m in listed] == sorted((m["timestamp"] for m in listed), reverse=True)
    messages = {m["message_id"]: m for m in listed}
    assert set(messages) == {ours, inbound["message_id"]}
    mine, theirs = messages[ours], messages[inbound["message_id"]]
    assert mine["quoted_message_id"] == inbound["message_id"] and mine["text"] == "hello back"
    assert mine["status"] == "read" and mine["from_me"] is True
    assert theirs["text"] == "oi!" and theirs["sender"]["phone"] == PEER and theirs["status"] == "received"

    # the same facts reached the receiver, signed
    [received] = _delivered(receiver, "/store", "message.received")
    assert received["data"]["message_id"] == inbound["message_id"]
    assert _delivered(receiver, "/store", "message.sent")[0]["data"]["message_id"] == ours
    receipts = _delivered(receiver, "/store", "message.receipt")
    assert receipts[-1]["data"]["message_ids"] == [ours] and receipts[-1]["data"]["type"] == "read"
    with db.connection() as conn:  # one store row per message, each beside its event
        rows = conn.execute("SELECT count(*) AS n FROM messages WHERE session_uid = %s", (created["id"],)).fetchone()
    assert rows["n"] == 2


def test_history_on_scan_fills_the_store_and_says_so_in_history_synced(api, runner, make_session, receiver, bridge):
    created = _session(make_session, receiver, "/history")
    sid, headers = created["session_id"], session_headers(created)
    assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
    history = {"sync_type": "initial_bootstrap", "chats": [
        {"phone": PEER, "name": "Ana", "unread_count": 1, "messages": [
            {"id": "3EB0H1", "text": "are you there?", "timestamp": 1790000100},
            {"id": "3EB0H0", "text": "yes", "from_me": True, "status": "read", "timestamp": 1790000000}]},
        {"jid": "120363012345678901@g.us", "name": "Team", "pinned": True, "messages": [
            {"id": "3EB0HG", "text": "standup at 9", "sender": "5511900000001@s.whatsapp.net",
             "timestamp": 1790000200}]}],
        "pushnames": [{"phone": PEER, "push_name": "Ana Paula"}]}
    wait_for(lambda: runner.emulator("POST", f"/emulator/sessions/{sid}/scan",
                                     {"phone": "5511999990032", "history": history})[0] == 200,
             message="the emulator takes the scan with history")

    [synced] = _delivered(receiver, "/history", "history.synced")
    assert synced["data"] == {"sync_type": "initial_bootstrap", "chunk_order": 1, "progress": 100,
                              "chats": 2, "messages": 3, "contacts": 1}
    chats = _get(api, created, "/chats")["chats"]
    assert [(c["jid"], c["name"], c["unread_count"], c["pinned"]) for c in chats] == [
        ("120363012345678901@g.us", "Team", 0, True), (PEER_JID, "Ana", 1, False)]
    messages = _get(api, created, f"/chats/{PEER}/messages")["messages"]
    assert [(m["message_id"], m["from_me"], m["status"], m["text"]) for m in messages] == [
        ("3EB0H1", False, "received", "are you there?"), ("3EB0H0", True, "read", "yes")]
    assert _get(api, created, f"/contacts/{PEER}")["push_name"] == "Ana Paula"


def test_a_contacts_profile_comes_from_the_runner_once_then_from_the_cache(api, runner, make_session):
    created = make_session()
    sid = created["session_id"]
    pair_with_emulator(api, runner, created, "5511999990033")
    first = _get(api, created, f"/contacts/{PEER}")
    assert first["on_whatsapp"] is True and first["about"] == "Hey there! I am using WhatsApp."
    assert first["profile_at"] is not None
    assert _get(api, created, f"/contacts/{PEER}") == first  # cached: no second lookup
    absent = _get(api, created, "/contacts/5511912345670")  # the emulator's rule: ends in 0, not on WhatsApp
    assert absent["on_whatsapp"] is False and absent["about"] is None
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/activity")
    lookups = [a["jid"] for a in body["activity"] if a["kind"] == "contact_profile"]
    assert lookups == [PEER_JID, "5511912345670@s.whatsapp.net"]
    refreshed = api.get(f"/sessions/{sid}/contacts/{PEER}?refresh=true", headers=session_headers(created))
    assert refreshed.status_code == 200 and refreshed.json_body["profile_at"] >= first["profile_at"]
