"""Issue 15's events end to end: the emulator's other phones (edits, revokes, reactions,
polls and votes, receipts, disappearing/view-once messages, group changes, a push-name
change) -> runner (the neonize translation code) -> event outbox -> events queue ->
dispatcher -> a real receiver that verifies every signature. The receiver subscribes to
each event by name. Also: a poll sent through the API gets its votes read back as
option names from the secret the runner kept in PostgreSQL, and mentions / mention_all /
view-once sends reach the driver as the neonize builder writes them."""
from __future__ import annotations

import json

import pytest

from chalicelib.schemas.webhook_events import EVENT_DATA
from tests.conftest import session_headers
from tests.support.runner_harness import module_runner, pair_with_emulator

SUBSCRIBED = ["message.received", "message.sent", "message.edited", "message.revoked", "message.receipt",
              "poll.vote", "group.participants", "group.update", "contact.updated"]
ANA, BIA, ADMIN = "5511977770001", "5511977770002", "5511977770003"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "whatsapp-events-e2e") as process:
        yield process


@pytest.fixture
def session(api, runner, make_session, receiver, bridge):
    created = make_session(name="events", webhook={"url": receiver.url("/wa"), "events": SUBSCRIBED})
    receiver.set_secrets("/wa", created["webhook_secret"])
    pair_with_emulator(api, runner, created, "5511977770000")
    return created


def _play(runner, sid, action, body):
    status, answer = runner.emulator("POST", f"/emulator/sessions/{sid}/{action}", body)
    assert status == 200, answer
    return answer


def _arrived(receiver, name, match, what):
    """The data of the first `name` webhook whose data satisfies `match` (every webhook verified)."""
    found = []

    def check():
        for item in receiver.on("/wa"):
            body = item.json
            if body["event"] == name and match(body["data"]):
                assert item.verified, item.verify_error
                EVENT_DATA[name][0].model_validate(body["data"])  # the OpenAPI document's `webhooks` model
                found.append(body["data"])
                return True
        return False

    receiver.wait_for(check, 30, what)
    return found[0]


def test_edits_revokes_reactions_receipts_and_flags_reach_the_receiver(api, runner, session, receiver):
    sid = session["session_id"]
    first = _play(runner, sid, "inbound", {"from": ANA, "text": "hello", "push_name": "Ana"})["message_id"]
    _arrived(receiver, "message.received", lambda d: d["message_id"] == first, "the first message")

    _play(runner, sid, "inbound", {"from": ANA, "type": "edit", "message_id": first, "text": "hello, edited"})
    edited = _arrived(receiver, "message.edited", lambda d: d["message_id"] == first, "message.edited")
    assert edited["text"] == "hello, edited" and edited["sender"]["phone"] == ANA and edited["edited_at"]

    _play(runner, sid, "inbound", {"from": ANA, "type": "reaction", "message_id": "3EB0MINE", "emoji": "👍"})
    _play(runner, sid, "inbound", {"from": ANA, "type": "reaction", "message_id": "3EB0MINE", "emoji": ""})
    removed = _arrived(receiver, "message.received", lambda d: d.get("type") == "reaction" and d["removed"],
                       "a reaction taken back")
    assert removed["emoji"] == "" and removed["message_id"] == "3EB0MINE"

    _play(runner, sid, "inbound", {"from": ANA, "type": "revoke", "message_id": first})
    revoked = _arrived(receiver, "message.revoked", lambda d: d["message_id"] == first, "message.revoked")
    assert revoked["by_admin"] is False and revoked["revoked_by"]["phone"] == ANA and revoked["sender"]["phone"] == ANA

    _play(runner, sid, "inbound", {"from": ANA, "text": "still me", "push_name": "Ana Maria"})
    contact = _arrived(receiver, "contact.updated", lambda d: d["contact"]["phone"] == ANA, "contact.updated")
    assert (contact["changed"], contact["push_name"], contact["previous_push_name"]) == (["push_name"], "Ana Maria",
                                                                                          "Ana")

    import base64  # noqa: PLC0415

    secret_picture = _play(runner, sid, "inbound", {
        "from": ANA, "type": "image", "media_base64": base64.b64encode(b"\x89PNG once").decode(),
        "mime_type": "image/png", "caption": "once", "view_once": True, "ephemeral": True})["message_id"]
    flagged = _arrived(receiver, "message.received", lambda d: d["message_id"] == secret_picture, "view-once image")
    assert (flagged["type"], flagged["caption"], flagged["view_once"], flagged["ephemeral"]) == ("image", "once",
                                                                                                 True, True)

    sent = api.post(f"/sessions/{sid}/messages?wait=true", headers=session_headers(session),
                    body=json.dumps({"to": ANA, "type": "text", "text": "seen?"})).json_body["message_id"]
    for kind in ("delivered", "read", "played"):
        _play(runner, sid, "receipt", {"message_ids": [sent], "type": kind})
    _play(runner, sid, "receipt", {"message_ids": [first], "type": "read_self", "chat": f"{ANA}@s.whatsapp.net"})
    for kind, ident in (("delivered", sent), ("read", sent), ("played", sent), ("read_self", first)):
        receipt = _arrived(receiver, "message.receipt", lambda d, k=kind: d["type"] == k, f"{kind} receipt")
        assert receipt["message_ids"] == [ident] and receipt["chat"]["phone"] == ANA


def test_polls_votes_and_group_changes_reach_the_receiver(api, runner, session, receiver):
    sid, headers = session["session_id"], session_headers(session)
    group = _play(runner, sid, "groups", {"name": "Team", "participants": [f"{ANA}@s.whatsapp.net",
                                                                           f"{BIA}@s.whatsapp.net"],
                                          "admins": [f"{ADMIN}@s.whatsapp.net"]})["jid"]

    # a poll this session sends: its secret is kept in PostgreSQL, the other phone's vote decrypts with it
    poll = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers,
                    body=json.dumps({"to": group, "type": "poll", "question": "Lunch?",
                                     "options": ["pizza", "sushi", "tacos"], "selectable_count": 0}))
    assert poll.status_code == 200, poll.body
    poll_id = poll.json_body["message_id"]
    _play(runner, sid, "inbound", {"from": ANA, "chat": group, "type": "poll_vote", "poll_id": poll_id,
                                   "options": ["tacos", "pizza"]})
    vote = _arrived(receiver, "poll.vote", lambda d: d["poll_id"] == poll_id, "a vote on our poll")
    assert vote["options"] == ["pizza", "tacos"] and vote["voter"]["phone"] == ANA and "error" not in vote

    # a poll another member sends, and a vote on it
    theirs = _play(runner, sid, "inbound", {"from": ANA, "chat": group, "type": "poll", "name": "Where?",
                                            "options": ["here", "there"], "selectable_count": 1})["message_id"]
    received = _arrived(receiver, "message.received", lambda d: d["message_id"] == theirs, "their poll")
    assert (received["type"], received["name"], received["options"], received["selectable_count"]) == (
        "poll", "Where?", ["here", "there"], 1)
    _play(runner, sid, "inbound", {"from": BIA, "chat": group, "type": "poll_vote", "poll_id": theirs,
                                   "options": ["there"]})
    their_vote = _arrived(receiver, "poll.vote", lambda d: d["poll_id"] == theirs, "a vote on their poll")
    assert their_vote["options"] == ["there"] and their_vote["voter"]["phone"] == BIA
    _play(runner, sid, "inbound", {"from": BIA, "chat": group, "type": "poll_vote", "poll_id": "3EB0NEVERSEEN",
                                   "options": ["x"]})
    unknown = _arrived(receiver, "poll.vote", lambda d: d["poll_id"] == "3EB0NEVERSEEN", "a vote on an unknown poll")
    assert (unknown["options"], unknown["error"]) == (None, "poll_unknown")

    _play(runner, sid, "inbound", {"from": ADMIN, "chat": group, "type": "revoke", "message_id": theirs,
                                   "by_admin": True, "author": ANA})
    by_admin = _arrived(receiver, "message.revoked", lambda d: d["message_id"] == theirs, "an admin's revoke")
    assert by_admin["by_admin"] is True and by_admin["sender"]["phone"] == ANA
    assert by_admin["revoked_by"]["phone"] == ADMIN

    _play(runner, sid, "groupchange", {"chat": group, "by": ADMIN, "action": "promoted", "participants": [BIA]})
    promoted = _arrived(receiver, "group.participants", lambda d: d["action"] == "promoted", "group.participants")
    assert promoted["by"]["phone"] == ADMIN and [p["phone"] for p in promoted["participants"]] == [BIA]
    assert promoted["group"]["jid"] == group
    _play(runner, sid, "groupchange", {"chat": group, "by": ADMIN, "subject": "Team B", "description": None,
                                       "announce": True})
    changed = _arrived(receiver, "group.update", lambda d: d["changes"].get("subject") == "Team B", "group.update")
    assert changed["changes"] == {"subject": "Team B", "description": None, "announce": True}
    assert changed["by"]["phone"] == ADMIN and changed["kind"] == "changed"
    # the emulator's group follows what it played: the API's group info says the same
    info = api.get(f"/sessions/{sid}/groups/{group}", headers=headers)
    assert info.status_code == 200, info.body
    assert info.json_body["name"] == "Team B"
    assert [p["is_admin"] for p in info.json_body["participants"] if p["phone"] == BIA] == [True]


def test_mentions_mention_all_and_view_once_reach_the_driver(api, runner, session, receiver):
    sid, headers = session["session_id"], session_headers(session)
    group = _play(runner, sid, "groups", {"name": "All", "participants": [f"{ANA}@s.whatsapp.net",
                                                                          f"{BIA}@s.whatsapp.net"]})["jid"]
    bodies = [
        {"to": group, "type": "text", "text": "hi", "mentions": [f"+{ANA}"]},
        {"to": group, "type": "text", "text": "everyone, standup", "mention_all": True},
        {"to": ANA, "type": "image", "media_base64": "iVBORw0KGgo=", "caption": "once", "view_once": True},
    ]
    ids = []
    for body in bodies:
        answer = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers, body=json.dumps(body))
        assert answer.status_code == 200, answer.body
        ids.append(answer.json_body["message_id"])
    _, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    sent = {m["message_id"]: m for m in outbox["messages"]}
    assert sent[ids[0]]["text"] == f"hi @{ANA}" and sent[ids[0]]["mentioned_jids"] == [f"{ANA}@s.whatsapp.net"]
    # every participant but this account, fetched through the driver's group_info; the text unchanged
    assert sent[ids[1]]["text"] == "everyone, standup"
    assert sorted(sent[ids[1]]["mentioned_jids"]) == sorted([f"{ANA}@s.whatsapp.net", f"{BIA}@s.whatsapp.net"])
    assert sent[ids[2]]["view_once"] is True
    event = _arrived(receiver, "message.sent", lambda d: d["message_id"] == ids[1], "message.sent with mention_all")
    assert event["mention_all"] is True and "mention_all_jids" not in event

    # an edit and a revoke sent through the API are heard as the phone's would be
    edit = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers,
                    body=json.dumps({"to": group, "type": "edit", "message_id": ids[0], "text": "hi, edited"}))
    assert edit.status_code == 200, edit.body
    edited = _arrived(receiver, "message.edited", lambda d: d["message_id"] == ids[0], "our own edit")
    assert (edited["from_me"], edited["text"], edited["edit_id"]) == (True, "hi, edited", edit.json_body["message_id"])
    sent_edit = _arrived(receiver, "message.sent", lambda d: d.get("target_message_id") == ids[0], "the edit sent")
    assert sent_edit["type"] == "edit"
    revoke = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers,
                      body=json.dumps({"to": group, "type": "revoke", "message_id": ids[1]}))
    assert revoke.status_code == 200, revoke.body
    revoked = _arrived(receiver, "message.revoked", lambda d: d["message_id"] == ids[1], "our own revoke")
    assert (revoked["from_me"], revoked["by_admin"]) == (True, False)
    assert revoked["sender"]["phone"] == revoked["revoked_by"]["phone"] == "5511977770000"

    refused = api.post(f"/sessions/{sid}/messages", headers=headers,
                       body=json.dumps({"to": ANA, "type": "text", "text": "x", "mention_all": True}))
    assert refused.status_code == 422 and "mention_all" in refused.body.decode()
    missing = api.post(f"/sessions/{sid}/messages?wait=true", headers=headers,
                       body=json.dumps({"to": "120363999999999999@g.us", "type": "text", "text": "x",
                                        "mention_all": True}))
    assert missing.status_code == 502 and missing.json_body["code"] == "group_not_found"
