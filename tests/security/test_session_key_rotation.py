"""Finding 13 (issue 11): a leaked session key can be rotated without deleting the session.

`POST /sessions/{session_id}/rotate-key` (admin or that session) answers a new key once;
the old key is refused (401) on the very next request, served by the same warm
container (no key -> session cache keeps it alive); the rotation is audited, never the key.
"""
from __future__ import annotations

import json

from tests.conftest import session_headers


def _rotate(api, session_id: str, headers: dict):
    return api.post(f"/sessions/{session_id}/rotate-key", headers=headers, body=b"")


def test_a_session_rotates_its_own_key_and_the_old_one_is_refused_at_once(api, make_session, db):
    created = make_session()
    sid, old = created["session_id"], session_headers(created)
    assert api.get(f"/sessions/{sid}", headers=old).status_code == 200  # warm: the old key was just used

    response = _rotate(api, sid, old)
    assert response.status_code == 200, response.body
    body = response.json_body
    assert body["session_id"] == sid and body["api_key"].startswith("zses_")
    assert body["api_key"] != created["api_key"] and len(body["api_key"]) >= 40
    assert "rotated_at" in body

    refused = api.get(f"/sessions/{sid}", headers=old)
    assert refused.status_code == 401 and refused.json_body["code"] == "invalid_api_key"
    new = {"Authorization": f"Bearer {body['api_key']}"}
    assert api.get(f"/sessions/{sid}", headers=new).status_code == 200
    assert api.get(f"/sessions/{sid}", headers={"X-API-Key": created["api_key"]}).status_code == 401

    with db.connection() as conn:
        stored = conn.execute("SELECT api_key_hash FROM sessions WHERE session_id = %s", (sid,)).fetchone()
    assert body["api_key"] not in stored["api_key_hash"]  # only the digest


def test_another_sessions_key_cannot_rotate_it(api, make_session):
    victim, attacker = make_session(), make_session()
    response = _rotate(api, victim["session_id"], session_headers(attacker))
    assert response.status_code == 403 and response.json_body["code"] == "wrong_session"
    assert api.get(f"/sessions/{victim['session_id']}", headers=session_headers(victim)).status_code == 200


def test_the_admin_can_rotate_a_sessions_key(api, make_session, admin_headers):
    created = make_session()
    sid = created["session_id"]
    response = _rotate(api, sid, admin_headers)
    assert response.status_code == 200, response.body
    assert api.get(f"/sessions/{sid}", headers=session_headers(created)).status_code == 401
    assert api.get(f"/sessions/{sid}", headers={"X-API-Key": response.json_body["api_key"]}).status_code == 200


def test_rotating_an_unknown_session_is_404(api, admin_headers):
    response = _rotate(api, "no-such-session", admin_headers)
    assert response.status_code == 404 and response.json_body["code"] == "session_not_found"


def test_the_rotation_is_audited_without_the_key(api, make_session, admin_headers, db):
    created = make_session()
    sid = created["session_id"]
    new_key = _rotate(api, sid, session_headers(created)).json_body["api_key"]
    entries = api.get(f"/audit?session_id={sid}", headers=admin_headers).json_body["entries"]
    rotations = [e for e in entries if e["action"] == "rotate_session_key"]
    assert len(rotations) == 1 and rotations[0]["actor"] == f"session:{sid}"
    assert rotations[0]["details"]["status"] == 200
    with db.connection() as conn:
        rows = conn.execute("SELECT row_to_json(a)::text AS line FROM audit_log a").fetchall()
    assert not any(new_key in r["line"] or created["api_key"] in r["line"] for r in rows)


def test_the_route_is_in_the_openapi_document(api):
    document = json.loads(api.get("/openapi.json").body)
    operation = document["paths"]["/sessions/{session_id}/rotate-key"]["post"]
    assert operation["x-zemeow-access"] == "session"
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SessionKeyRotated")
    assert "api_key" in document["components"]["schemas"]["SessionKeyRotated"]["required"]
