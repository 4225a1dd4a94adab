"""Chats, contacts and groups through the whole pipeline with the emulator:
API -> commands row -> SQS FIFO shard -> runner -> driver, asserting what the driver
received (its activity log) and what it answered. One connected session per module."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import emulator_activity, module_paired_session, module_runner, wait_for

ME = "5511999990002"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "chats-e2e") as process:
        yield process


@pytest.fixture(scope="module")
def paired(stack, runner):
    return module_paired_session(stack, runner, name="chats", phone=ME, push_name="Chats")


def _post(api, created, path, body, query=""):
    return api.post(f"/sessions/{created['session_id']}{path}{query}", headers=session_headers(created),
                    body=json.dumps(body))


def test_presence_and_read_reach_the_driver_in_order_with_the_messages(api, runner, paired):
    sid = paired["session_id"]
    before = len(emulator_activity(runner, sid))
    typing = _post(api, paired, "/presence", {"chat": "+55 11 91234-5678", "state": "composing"})
    assert typing.status_code == 202
    sent = _post(api, paired, "/messages", {"to": "5511912345678", "type": "text", "text": "hi"}, "?wait=true")
    assert sent.status_code == 200, sent.body
    done = _post(api, paired, "/read", {"chat": "120363041234567890@g.us", "message_ids": ["3EB0A1", "3EB0A2"],
                                        "sender": "5511988887777"}, "?wait=true")
    assert done.status_code == 200, done.body
    assert done.json_body["status"] == "succeeded" and done.json_body["result"]["read"] == 2
    away = _post(api, paired, "/presence", {"state": "unavailable"}, "?wait=true")
    assert away.status_code == 200 and away.json_body["result"] == {"state": "unavailable"}

    # in the order they were posted: "typing" reached the driver before the message (one FIFO group, one actor)
    activity = emulator_activity(runner, sid)[before:]
    assert [(a["kind"], a.get("state")) for a in activity] == [("presence", "composing"), ("message", None),
                                                               ("read", None), ("presence", "unavailable")]
    assert activity[0]["chat"] == "5511912345678@s.whatsapp.net"
    assert activity[1]["message_id"] == sent.json_body["message_id"]
    assert activity[2] == {**activity[2], "chat": "120363041234567890@g.us", "message_ids": ["3EB0A1", "3EB0A2"],
                           "sender": "5511988887777@s.whatsapp.net"}
    assert activity[3]["chat"] is None


def test_a_group_read_without_sender_names_each_author_from_the_message_store(api, runner, paired):
    """Receipts in a group name the messages' author: the runner groups the ids by the
    author the message store recorded when they arrived, one receipt per author."""
    sid, group = paired["session_id"], "120363041234567899@g.us"
    authors = ["5511900000001", "5511900000002", "5511900000001"]
    ids = []
    for n, author in enumerate(authors):  # three messages from two members arrive in the group
        status, answer = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                         {"from": author, "chat": group, "text": f"hello {n}"})
        assert status == 200, answer
        ids.append(answer["message_id"])
    before = len(emulator_activity(runner, sid))
    # the inbound events are written by the session's actor before it takes the read command
    done = _post(api, paired, "/read", {"chat": group, "message_ids": ids}, "?wait=true")
    assert done.status_code == 200, done.body
    reads = [a for a in emulator_activity(runner, sid)[before:] if a["kind"] == "read"]
    assert sorted((a["sender"], tuple(a["message_ids"])) for a in reads) == [
        ("5511900000001@s.whatsapp.net", (ids[0], ids[2])), ("5511900000002@s.whatsapp.net", (ids[1],))]

    unknown = _post(api, paired, "/read", {"chat": group, "message_ids": [ids[0], "3EB0NEVER"]}, "?wait=true")
    assert unknown.status_code == 502 and unknown.json_body["code"] == "sender_required"
    assert "3EB0NEVER" in unknown.json_body["message"]


def test_contacts_check_answers_per_input_and_asks_the_driver_once_per_number(api, runner, paired, container):
    sid = paired["session_id"]
    phones = ["+55 11 91234-5671", "5511912345670", "5511912345671@s.whatsapp.net", "+1 415 555 0123"]
    response = _post(api, paired, "/contacts/check", {"phones": phones})
    assert response.status_code == 200, response.body
    body = response.json_body
    assert [(r["input"], r["phone"], r["on_whatsapp"], r["jid"]) for r in body["results"]] == [
        ("+55 11 91234-5671", "5511912345671", True, "5511912345671@s.whatsapp.net"),
        ("5511912345670", "5511912345670", False, None),  # the emulator's rule: last digit 0
        ("5511912345671@s.whatsapp.net", "5511912345671", True, "5511912345671@s.whatsapp.net"),
        ("+1 415 555 0123", "14155550123", True, "14155550123@s.whatsapp.net"),
    ]
    assert emulator_activity(runner, sid, "check_contacts")[-1]["phones"] == ["5511912345671", "5511912345670",
                                                                      "14155550123"]
    limit = body["rate_limit"]
    assert limit["limit"] == 200 and limit["remaining"] in (196, 197)  # 3 unique numbers charged
    assert limit["reset_seconds"] > 0


def test_groups_create_list_info_and_participant_changes(api, runner, paired):
    sid, headers = paired["session_id"], session_headers(paired)
    me = f"{ME}@s.whatsapp.net"
    created = _post(api, paired, "/groups", {"name": "Team", "participants": ["+55 11 91234-5671",
                                                                              "5511912345670"]})
    assert created.status_code == 201, created.body
    group = created.json_body
    jid = group["jid"]
    assert jid.endswith("@g.us") and group["name"] == "Team" and group["owner"] == me
    # the number that is not on WhatsApp was left out
    assert [(p["jid"], p["is_admin"], p["is_super_admin"]) for p in group["participants"]] == [
        (me, True, True), ("5511912345671@s.whatsapp.net", False, False)]
    assert group["participants_count"] == 2

    listed = api.get(f"/sessions/{sid}/groups", headers=headers)
    assert listed.status_code == 200
    assert jid in [g["jid"] for g in listed.json_body["groups"]]
    assert all("participants" not in g for g in listed.json_body["groups"])

    changes = _post(api, paired, f"/groups/{jid}/participants",
                    {"action": "add", "participants": ["5511912345672", "5511912345671", "5511912345680"]})
    assert changes.status_code == 200, changes.body
    assert [(p["phone"], p["ok"], p["error"]) for p in changes.json_body["participants"]] == [
        ("5511912345672", True, None), ("5511912345671", False, "already_member"),
        ("5511912345680", False, "not_on_whatsapp")]
    promote = _post(api, paired, f"/groups/{jid}/participants",
                    {"action": "promote", "participants": ["5511912345672", "5511912345673"]})
    assert [(p["ok"], p["error"]) for p in promote.json_body["participants"]] == [(True, None),
                                                                                   (False, "not_member")]
    demote_owner = _post(api, paired, f"/groups/{jid}/participants", {"action": "demote", "participants": [ME]})
    assert demote_owner.json_body["participants"][0]["error"] == "not_allowed"
    removed = _post(api, paired, f"/groups/{jid}/participants", {"action": "remove", "participants": ["5511912345671"]})
    assert removed.json_body["participants"][0]["ok"] is True

    info = api.get(f"/sessions/{sid}/groups/{jid}", headers=headers)
    assert info.status_code == 200
    assert {p["jid"]: p["is_admin"] for p in info.json_body["participants"]} == {
        me: True, "5511912345672@s.whatsapp.net": True}
    assert emulator_activity(runner, sid, "update_participants")[-1] == {
        **emulator_activity(runner, sid, "update_participants")[-1], "group_jid": jid, "action": "remove",
        "participants": ["5511912345671@s.whatsapp.net"]}


def test_unknown_groups_are_404_and_a_plain_member_cannot_change_participants(api, runner, paired):
    sid, headers = paired["session_id"], session_headers(paired)
    missing = api.get(f"/sessions/{sid}/groups/120363000000000001@g.us", headers=headers)
    assert missing.status_code == 404 and missing.json_body["code"] == "group_not_found"

    status, seeded = runner.emulator("POST", f"/emulator/sessions/{sid}/groups",
                                     {"name": "Someone else's", "participants": ["5511977776661"]})
    assert status == 200, seeded
    info = api.get(f"/sessions/{sid}/groups/{seeded['jid']}", headers=headers).json_body
    assert info["owner"] == "5511977776661@s.whatsapp.net"
    mine = [p for p in info["participants"] if p["phone"] == ME]
    assert mine and not mine[0]["is_admin"]
    refused = _post(api, paired, f"/groups/{seeded['jid']}/participants",
                    {"action": "add", "participants": ["5511912345675"]})
    assert refused.status_code == 502 and refused.json_body["code"] == "not_admin"
    assert refused.json_body["details"]["command_id"]


def test_groups_and_chat_commands_survive_a_reconnect(api, runner, paired):
    """The emulator keeps a session's groups beside its (replaced) client, as WhatsApp keeps them
    server-side; after a network drop the runner reconnects and chat commands work again."""
    sid, headers = paired["session_id"], session_headers(paired)
    groups_before = api.get(f"/sessions/{sid}/groups", headers=headers).json_body["groups"]
    assert groups_before
    assert runner.emulator("POST", f"/emulator/sessions/{sid}/drop")[0] == 200
    wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated"
             and runner.emulator("GET", f"/emulator/sessions/{sid}")[1].get("state") == "connected",
             message="the runner reconnected the stored device")
    response = _post(api, paired, "/presence", {"state": "available"}, "?wait=true")
    assert response.status_code == 200, response.body
    assert emulator_activity(runner, sid, "presence")[-1]["state"] == "available"
    groups_after = api.get(f"/sessions/{sid}/groups", headers=headers).json_body["groups"]
    assert [g["jid"] for g in groups_after] == [g["jid"] for g in groups_before]


def test_account_presence_without_a_push_name_is_refused_as_whatsmeow_refuses_it(api, runner, make_session):
    """whatsmeow's SendPresence needs the account's push name (ErrNoPushName); typing in a
    chat does not. The emulator refuses the same way, through the same error mapping."""
    from tests.support.runner_harness import pair_with_emulator

    created = make_session(name="no push name")
    pair_with_emulator(api, runner, created, "5511999990003", push_name=None)
    refused = _post(api, created, "/presence", {"state": "available"}, "?wait=true")
    assert refused.status_code == 502, refused.body
    assert refused.json_body["code"] == "push_name_missing" and "PushName" in refused.json_body["message"]
    typing = _post(api, created, "/presence", {"chat": "5511912345678", "state": "composing"}, "?wait=true")
    assert typing.status_code == 200, typing.body
    assert [a["state"] for a in emulator_activity(runner, created["session_id"], "presence")] == ["composing"]
