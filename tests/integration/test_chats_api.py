"""Chats, contacts and groups at the API: validation (422 naming the field or item),
refusal when not connected (409, nothing queued), the contacts-check cap and rate limit
(429 + Retry-After, documented), and what is queued for the runner."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers

GROUP = "120363041234567890@g.us"


def _post(api, created, path, body, query=""):
    return api.post(f"/sessions/{created['session_id']}{path}{query}", headers=session_headers(created),
                    body=json.dumps(body))


def _commands(db, session_id, type_=None):
    with db.connection() as conn:
        rows = conn.execute("SELECT * FROM commands WHERE session_id = %s ORDER BY created_at",
                            (session_id,)).fetchall()
    return [r for r in rows if type_ is None or r["type"] == type_]


def test_read_and_presence_are_queued_in_order_with_normalised_chats(api, online, db):
    sid = online["session_id"]
    typing = _post(api, online, "/presence", {"chat": "+55 11 91234-5678", "state": "recording"})
    read = _post(api, online, "/read", {"chat": GROUP, "message_ids": ["3EB0A", "3EB0B"],
                                        "sender": "+55 11 98888-7777"})
    away = _post(api, online, "/presence", {"state": "unavailable"})
    for response in (typing, read, away):
        assert response.status_code == 202, response.body
        assert response.json_body["status"] == "queued"
    rows = _commands(db, sid)
    assert [r["type"] for r in rows] == ["send_presence", "mark_read", "send_presence"]
    assert [str(r["id"]) for r in rows] == [x.json_body["command_id"] for x in (typing, read, away)]
    assert rows[0]["payload"] == {"state": "recording", "chat": "5511912345678@s.whatsapp.net"}
    assert rows[1]["payload"] == {"chat": GROUP, "message_ids": ["3EB0A", "3EB0B"],
                                  "sender": "5511988887777@s.whatsapp.net"}
    assert rows[2]["payload"] == {"state": "unavailable"}


@pytest.mark.parametrize("path,body,field", [
    ("/read", {"chat": "12", "message_ids": ["A"]}, "chat"),
    ("/read", {"chat": "5511912345678", "message_ids": []}, "message_ids"),
    ("/read", {"chat": "5511912345678", "message_ids": ["A"] * 2}, "message_ids"),
    ("/read", {"chat": "5511912345678", "message_ids": [f"id{i}" for i in range(101)]}, "message_ids"),
    ("/read", {"chat": "5511912345678", "message_ids": ["bad id!"]}, "message_ids.0"),
    ("/read", {"chat": GROUP, "message_ids": ["A"], "sender": GROUP}, "sender"),
    ("/presence", {"state": "typing"}, "state"),
    ("/presence", {"state": "composing"}, "chat"),
    ("/presence", {"state": "available", "chat": "5511912345678"}, "chat"),
    ("/presence", {"state": "paused", "chat": "not-a-phone"}, "chat"),
    ("/contacts/check", {"phones": []}, "phones"),
    ("/contacts/check", {"phones": ["5511912345678", "12", "+1 415 555 0100"]}, "phones.1"),
    ("/contacts/check", {"phones": [GROUP]}, "phones.0"),
    ("/groups", {"name": "", "participants": ["5511912345678"]}, "name"),
    ("/groups", {"name": "x" * 101, "participants": ["5511912345678"]}, "name"),
    ("/groups", {"name": "team", "participants": []}, "participants"),
    ("/groups", {"name": "team", "participants": ["5511912345678", "+55 11 91234-5678"]}, "participants"),
    ("/groups", {"name": "team", "participants": ["5511912345678", "nope"]}, "participants.1"),
    (f"/groups/{GROUP}/participants", {"action": "kick", "participants": ["5511912345678"]}, "action"),
    (f"/groups/{GROUP}/participants", {"action": "add", "participants": [GROUP]}, "participants.0"),
    ("/groups/not-a-group/participants", {"action": "add", "participants": ["5511912345678"]}, "group_jid"),
])
def test_bad_input_is_422_naming_the_field(api, online, db, path, body, field):
    response = _post(api, online, path, body)
    assert response.status_code == 422, response.body
    assert field in [d["field"] for d in response.json_body["details"]], response.json_body
    assert _commands(db, online["session_id"]) == []


def test_a_bad_group_jid_in_the_path_is_422(api, online):
    response = api.get(f"/sessions/{online['session_id']}/groups/5511912345678@s.whatsapp.net",
                       headers=session_headers(online))
    assert response.status_code == 422 and response.json_body["details"][0]["field"] == "group_jid"


def test_a_session_that_is_not_logged_in_is_409_and_nothing_is_queued(api, make_session, db):
    created = make_session()
    sid, headers = created["session_id"], session_headers(created)
    calls = [
        _post(api, created, "/read", {"chat": "5511912345678", "message_ids": ["A"]}),
        _post(api, created, "/presence", {"state": "available"}),
        _post(api, created, "/contacts/check", {"phones": ["5511912345678"]}),
        _post(api, created, "/groups", {"name": "team", "participants": ["5511912345678"]}),
        _post(api, created, f"/groups/{GROUP}/participants", {"action": "add", "participants": ["5511912345678"]}),
        api.get(f"/sessions/{sid}/groups", headers=headers),
        api.get(f"/sessions/{sid}/groups/{GROUP}", headers=headers),
    ]
    assert [(c.status_code, c.json_body["code"]) for c in calls] == [(409, "not_connected")] * len(calls)
    assert _commands(db, sid) == []
    with db.connection() as conn:  # and no number was charged
        assert conn.execute("SELECT 1 FROM rate_limits WHERE bucket = %s", (f"contacts_check:{sid}",)).fetchone() is None


def test_a_batch_over_the_cap_is_422_naming_the_limit(api, online, container, db):
    container.chats.max_batch = 3
    response = _post(api, online, "/contacts/check", {"phones": ["5511912345671", "5511912345672",
                                                                 "5511912345673", "5511912345674"]})
    assert response.status_code == 422
    assert response.json_body["details"][0]["field"] == "phones"
    assert "3" in response.json_body["message"] and "CONTACTS_CHECK_MAX_BATCH" in response.json_body["message"]
    assert _commands(db, online["session_id"]) == []


def test_over_the_rate_limit_is_429_with_retry_after_and_nothing_queued(api, online, container, db):
    sid = online["session_id"]
    container.chats.rate_limit = (10, 3600.0)  # 10 numbers an hour: one every 360 s
    container.chats.rate_limits.take(f"contacts_check:{sid}", 8, capacity=10, period=3600.0)
    response = _post(api, online, "/contacts/check", {"phones": ["5511912345671", "5511912345672",
                                                                 "5511912345673"]})
    assert response.status_code == 429, response.body
    body = response.json_body
    assert body["code"] == "rate_limited"
    retry = int(response.headers["Retry-After"])
    assert 350 <= retry <= 360 and body["details"]["retry_after_seconds"] == retry
    assert body["details"]["remaining"] == 2
    assert _commands(db, sid) == []
    # the refusal cost nothing: two numbers still fit (duplicates count once); the answer then waits
    # for a runner, which this test does not start
    container.chats.wait_timeout = 0.3
    response = _post(api, online, "/contacts/check", {"phones": ["5511912345671", "+55 11 91234-5671",
                                                                 "5511912345672"]})
    assert response.status_code == 504 and response.json_body["code"] == "runner_timeout"
    [row] = _commands(db, sid, "check_contacts")
    assert row["payload"] == {"phones": ["5511912345671", "5511912345672"]}
    assert response.json_body["details"]["command_id"] == str(row["id"])


def test_429_and_retry_after_are_in_the_openapi_document(api):
    document = api.get("/openapi.json").json_body
    operation = document["paths"]["/sessions/{session_id}/contacts/check"]["post"]
    assert operation["responses"]["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    for path, method in [("/sessions/{session_id}/read", "post"), ("/sessions/{session_id}/presence", "post"),
                         ("/sessions/{session_id}/groups", "get"), ("/sessions/{session_id}/groups", "post"),
                         ("/sessions/{session_id}/groups/{group_jid}", "get"),
                         ("/sessions/{session_id}/groups/{group_jid}/participants", "post")]:
        assert {"409", "504"} <= set(document["paths"][path][method]["responses"]), (path, method)


def test_group_reads_wait_for_the_runner_and_time_out_naming_the_command(api, online, container, db):
    container.chats.wait_timeout = 0.3
    response = api.get(f"/sessions/{online['session_id']}/groups", headers=session_headers(online))
    assert response.status_code == 504 and response.json_body["code"] == "runner_timeout"
    [row] = _commands(db, online["session_id"], "list_groups")
    assert response.json_body["details"]["command_id"] == str(row["id"])
