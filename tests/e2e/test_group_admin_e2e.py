"""Group administration through the whole pipeline with the emulator (issue 17):
API -> commands row -> SQS FIFO shard -> runner -> emulator driver, asserting what the
driver did (its activity log and the groups it holds) and what the API answered; bad input,
a session that is not logged in, and another session's key, per route."""
from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import emulator_activity, module_paired_session, module_runner

ME = "5511999990012"
MY_JID = f"{ME}@s.whatsapp.net"
JPEG = b"\xff\xd8\xff\xe0" + b"\x10" * 256
PERSON = "5511912345671"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "groups-admin-e2e") as process:
        yield process


@pytest.fixture(scope="module")
def paired(stack, runner):
    return module_paired_session(stack, runner, name="groups admin", phone=ME, push_name="Admin")


def _call(api, created, method, path, body=None):
    headers = session_headers(created)
    url = f"/sessions/{created['session_id']}{path}"
    if body is None:
        return getattr(api, method)(url, headers=headers)
    return getattr(api, method)(url, headers=headers, body=json.dumps(body))


def _new_group(api, paired, name="Team"):
    created = _call(api, paired, "post", "/groups", {"name": name, "participants": [PERSON]})
    assert created.status_code == 201, created.body
    return created.json_body["jid"]


def _error(response, status, code):
    assert response.status_code == status, response.body
    body = response.json_body
    assert body["code"] == code and body["message"] and body["request_id"], body
    return body


def test_invite_link_is_read_revoked_previewed_and_used_to_join(api, runner, paired):
    sid = paired["session_id"]
    jid = _new_group(api, paired, "Invites")
    first = _call(api, paired, "get", f"/groups/{jid}/invite-link")
    assert first.status_code == 200, first.body
    link, code = first.json_body["link"], first.json_body["code"]
    assert link == f"https://chat.whatsapp.com/{code}" and first.json_body["group_jid"] == jid
    assert _call(api, paired, "get", f"/groups/{jid}/invite-link").json_body["code"] == code  # stable until revoked

    revoked = _call(api, paired, "post", f"/groups/{jid}/invite-link/revoke")
    assert revoked.status_code == 200, revoked.body
    assert revoked.json_body["code"] != code
    assert [a["revoke"] for a in emulator_activity(runner, sid, "invite_link")][-3:] == [False, False, True]
    _error(_call(api, paired, "post", "/groups/preview", {"invite": link}), 502, "invite_revoked")
    preview = _call(api, paired, "post", "/groups/preview", {"invite": revoked.json_body["link"]})
    assert preview.status_code == 200, preview.body
    assert preview.json_body["jid"] == jid and preview.json_body["name"] == "Invites"

    # someone else's group, reachable by a link: preview (not a member yet), then join
    status, invite = runner.emulator("POST", f"/emulator/sessions/{sid}/invites",
                                     {"name": "Neighbours", "participants": ["5511977776661"]})
    assert status == 200, invite
    seen = _call(api, paired, "post", "/groups/preview", {"invite": invite["link"]})
    assert seen.status_code == 200 and seen.json_body["name"] == "Neighbours"
    assert MY_JID not in [p["jid"] for p in seen.json_body["participants"]]
    _error(_call(api, paired, "get", f"/groups/{invite['jid']}"), 404, "group_not_found")
    joined = _call(api, paired, "post", "/groups/join", {"invite": invite["code"]})  # the bare code works too
    assert joined.status_code == 200, joined.body
    assert joined.json_body["group_jid"] == invite["jid"]
    info = _call(api, paired, "get", f"/groups/{invite['jid']}")
    assert info.status_code == 200 and MY_JID in [p["jid"] for p in info.json_body["participants"]]
    _error(_call(api, paired, "post", "/groups/join", {"invite": invite["link"]}), 502, "already_member")
    _error(_call(api, paired, "post", "/groups/join", {"invite": "AAAAAAAAAAAAAAAAAAAAAA"}), 502, "invite_invalid")


def test_joining_a_group_that_approves_members_files_a_request(api, runner, paired):
    sid = paired["session_id"]
    status, invite = runner.emulator("POST", f"/emulator/sessions/{sid}/invites",
                                     {"name": "Moderated", "participants": ["5511977776662"], "approval": True})
    assert status == 200, invite
    joined = _call(api, paired, "post", "/groups/join", {"invite": invite["link"]})
    assert joined.status_code == 200 and joined.json_body["group_jid"] == invite["jid"]
    _error(_call(api, paired, "get", f"/groups/{invite['jid']}"), 404, "group_not_found")  # waiting for approval


def test_subject_description_picture_and_settings_change_the_group(api, runner, paired):
    sid = paired["session_id"]
    jid = _new_group(api, paired, "Before")
    renamed = _call(api, paired, "put", f"/groups/{jid}/subject", {"subject": "After"})
    assert renamed.status_code == 200 and renamed.json_body["subject"] == "After", renamed.body
    described = _call(api, paired, "put", f"/groups/{jid}/description", {"description": "Launch plans"})
    assert described.status_code == 200 and described.json_body["description"] == "Launch plans"
    picture = _call(api, paired, "put", f"/groups/{jid}/picture", {"media_base64": base64.b64encode(JPEG).decode()})
    assert picture.status_code == 200, picture.body
    assert picture.json_body["picture_id"] == emulator_activity(runner, sid, "group_picture")[-1]["picture_id"]
    settings = _call(api, paired, "put", f"/groups/{jid}/settings", {"announce": True, "locked": True})
    assert settings.status_code == 200, settings.body
    assert settings.json_body == {**settings.json_body, "group_jid": jid, "announce": True, "locked": True}
    info = _call(api, paired, "get", f"/groups/{jid}").json_body
    assert (info["name"], info["topic"], info["is_announce"], info["is_locked"]) == ("After", "Launch plans",
                                                                                     True, True)
    only_locked = _call(api, paired, "put", f"/groups/{jid}/settings", {"announce": False})
    assert only_locked.status_code == 200 and "locked" not in only_locked.json_body  # unchanged, not echoed
    info = _call(api, paired, "get", f"/groups/{jid}").json_body
    assert (info["is_announce"], info["is_locked"]) == (False, True)
    cleared = _call(api, paired, "put", f"/groups/{jid}/description", {"description": ""})
    assert cleared.status_code == 200
    assert _call(api, paired, "get", f"/groups/{jid}").json_body["topic"] is None


def test_a_plain_member_may_edit_info_until_the_group_is_locked_and_never_settings(api, runner, paired):
    sid = paired["session_id"]
    status, seeded = runner.emulator("POST", f"/emulator/sessions/{sid}/groups",
                                     {"name": "Theirs", "participants": ["5511977776663"]})
    assert status == 200, seeded
    jid = seeded["jid"]
    assert _call(api, paired, "put", f"/groups/{jid}/subject", {"subject": "Ours now"}).status_code == 200
    _error(_call(api, paired, "put", f"/groups/{jid}/settings", {"locked": True}), 502, "not_admin")
    _error(_call(api, paired, "get", f"/groups/{jid}/invite-link"), 502, "not_admin")
    _error(_call(api, paired, "get", f"/groups/{jid}/requests"), 502, "not_admin")


def test_join_requests_are_listed_approved_and_rejected(api, runner, paired):
    sid = paired["session_id"]
    jid = _new_group(api, paired, "Requests")
    asking = ["5511912340001", "5511912340002", "5511912340003"]
    status, body = runner.emulator("POST", f"/emulator/sessions/{sid}/requests",
                                   {"group_jid": jid, "participants": asking})
    assert status == 200, body
    listed = _call(api, paired, "get", f"/groups/{jid}/requests")
    assert listed.status_code == 200, listed.body
    assert [r["phone"] for r in listed.json_body["requests"]] == asking
    assert all(r["requested_at"] for r in listed.json_body["requests"])

    approved = _call(api, paired, "post", f"/groups/{jid}/requests",
                     {"action": "approve", "participants": [asking[0], "5511912340009"]})
    assert approved.status_code == 200, approved.body
    assert [(p["phone"], p["ok"], p["error"]) for p in approved.json_body["participants"]] == [
        (asking[0], True, None), ("5511912340009", False, "no_request")]
    rejected = _call(api, paired, "post", f"/groups/{jid}/requests", {"action": "reject", "participants": [asking[1]]})
    assert rejected.json_body["participants"][0]["ok"] is True
    assert [r["phone"] for r in _call(api, paired, "get", f"/groups/{jid}/requests").json_body["requests"]] == [
        asking[2]]
    members = [p["phone"] for p in _call(api, paired, "get", f"/groups/{jid}").json_body["participants"]]
    assert asking[0] in members and asking[1] not in members


def test_leaving_a_group(api, runner, paired):
    jid = _new_group(api, paired, "Leaving")
    left = _call(api, paired, "post", f"/groups/{jid}/leave")
    assert left.status_code == 200 and left.json_body == {**left.json_body, "group_jid": jid, "left": True}
    _error(_call(api, paired, "get", f"/groups/{jid}"), 404, "group_not_found")
    _error(_call(api, paired, "post", f"/groups/{jid}/leave"), 404, "group_not_found")
    assert jid not in [g["jid"] for g in _call(api, paired, "get", "/groups").json_body["groups"]]


GROUP = "120363041234567890@g.us"
ROUTES = [  # (method, path, a valid body)
    ("post", f"/groups/{GROUP}/leave", None),
    ("get", f"/groups/{GROUP}/invite-link", None),
    ("post", f"/groups/{GROUP}/invite-link/revoke", None),
    ("post", "/groups/preview", {"invite": "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"}),
    ("post", "/groups/join", {"invite": "AbCdEfGhIjKlMnOpQrStUv"}),
    ("put", f"/groups/{GROUP}/subject", {"subject": "x"}),
    ("put", f"/groups/{GROUP}/description", {"description": "x"}),
    ("put", f"/groups/{GROUP}/picture", {"media_base64": base64.b64encode(JPEG).decode()}),
    ("put", f"/groups/{GROUP}/settings", {"announce": True}),
    ("get", f"/groups/{GROUP}/requests", None),
    ("post", f"/groups/{GROUP}/requests", {"action": "approve", "participants": [PERSON]}),
]


@pytest.mark.parametrize("method,path,body", ROUTES)
def test_every_route_is_409_before_login_and_403_with_another_sessions_key(api, make_session, method, path, body):
    idle = make_session(name="never connected")
    _error(_call(api, idle, method, path, body), 409, "not_connected")
    other = make_session(name="another tenant")
    stranger = {**idle, "api_key": other["api_key"]}  # idle's routes with other's key
    assert _call(api, stranger, method, path, body).status_code == 403


@pytest.mark.parametrize("method,path,body,status,code", [
    ("get", "/groups/not-a-group/invite-link", None, 422, "validation_failed"),
    ("post", "/groups/5511912345671@s.whatsapp.net/leave", None, 422, "validation_failed"),
    ("post", "/groups/join", {"invite": "https://evil.example/AbCdEfGhIjKlMnOpQrStUv"}, 422, "validation_failed"),
    ("post", "/groups/preview", {"invite": "short"}, 422, "validation_failed"),
    ("post", "/groups/join", {}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/subject", {"subject": "bad\u0000name"}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/subject", {"subject": "x" * 101}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/subject", {"subject": "x", "extra": 1}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/description", {"description": "d" * 2049}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/settings", {}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/settings", {"announce": "yes please"}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/picture", {"media_base64": base64.b64encode(b"\x89PNG" + b"0" * 64).decode()},
     422, "validation_failed"),
    ("put", f"/groups/{GROUP}/picture", {"media_base64": base64.b64encode(b"\xff\xd8\xff" + b"0" * 716800).decode()},
     413, "picture_too_large"),
    ("put", f"/groups/{GROUP}/picture", {"media_base64": "not base64!"}, 422, "validation_failed"),
    ("put", f"/groups/{GROUP}/picture", {"media_url": "http://169.254.169.254/latest/meta-data"}, 422,
     "validation_failed"),
    ("put", f"/groups/{GROUP}/picture", {}, 422, "validation_failed"),
    ("post", f"/groups/{GROUP}/requests", {"action": "kick", "participants": [PERSON]}, 422, "validation_failed"),
    ("post", f"/groups/{GROUP}/requests", {"action": "approve", "participants": ["120363041234567891@g.us"]},
     422, "validation_failed"),
])
def test_bad_input_is_a_4xx_json_naming_the_problem(api, paired, method, path, body, status, code):
    error = _error(_call(api, paired, method, path, body), status, code)
    if status == 422 and body:
        assert error.get("details") or "group" in error["message"], error


def test_a_picture_by_media_key_must_be_this_sessions_and_exist(api, paired, make_session):
    """A media_key is checked as a send's is: another session's prefix is refused (isolation),
    a key that is not in the bucket is named; nothing is queued."""
    other = make_session(name="another tenant")
    foreign = _call(api, paired, "put", f"/groups/{GROUP}/picture",
                    {"media_key": f"sessions/{other['id']}/uploads/picture.jpg"})
    assert _error(foreign, 422, "validation_failed")["details"][0]["type"] == "foreign_media_key"
    missing = _call(api, paired, "put", f"/groups/{GROUP}/picture",
                    {"media_key": f"sessions/{paired['id']}/uploads/nothing-here.jpg"})
    assert _error(missing, 422, "validation_failed")["details"][0]["type"] == "not_found"
