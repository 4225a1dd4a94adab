"""The sessions API on the real database and queues: create, read, list, update, delete."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import session_headers


def _sid() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def _outbox(db, session_id):
    with db.connection() as conn:
        return conn.execute("SELECT event, envelope FROM event_outbox WHERE session_id = %s ORDER BY created_at",
                            (session_id,)).fetchall()


def test_create_answers_201_with_the_contract_fields(api, admin_headers):
    response = api.post("/sessions", headers=admin_headers, body=json.dumps({"name": "Shop"}))
    assert response.status_code == 201
    body = response.json_body
    assert set(body) == {"session_id", "id", "name", "api_key", "status", "created_at"}
    assert body["status"] == "disconnected" and body["name"] == "Shop"
    assert body["session_id"].startswith("ses_")
    assert body["api_key"].startswith("zses_") and len(body["api_key"]) >= 40  # 256 bits, base64url
    uuid.UUID(body["id"])


def test_custom_session_id_and_key_are_kept(api, admin_headers):
    sid, key = _sid(), "my-own-key-" + uuid.uuid4().hex
    body = api.post("/sessions", headers=admin_headers,
                    body=json.dumps({"name": "x", "session_id": sid, "api_key": key})).json_body
    assert body["session_id"] == sid and body["api_key"] == key
    assert api.get(f"/sessions/{sid}", headers={"X-API-Key": key}).status_code == 200


def test_duplicates_are_409(api, admin_headers, make_session):
    created = make_session(api_key="dup-key-" + uuid.uuid4().hex)
    again = api.post("/sessions", headers=admin_headers,
                     body=json.dumps({"name": "x", "session_id": created["session_id"]}))
    assert again.status_code == 409 and again.json_body["code"] == "session_exists"
    same_key = api.post("/sessions", headers=admin_headers,
                        body=json.dumps({"name": "x", "api_key": created["api_key"]}))
    assert same_key.status_code == 409 and same_key.json_body["code"] == "api_key_taken"


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": 5}, "name"),
    ({"name": "x", "session_id": "A!"}, "session_id"),
    ({"name": "x", "session_id": "ab"}, "session_id"),
    ({"name": "x", "api_key": "short"}, "api_key"),
    ({"name": "x", "api_key": "has spaces in it but is long enough"}, "api_key"),
    ({"name": "x", "metadata": {"blob": "x" * 17000}}, "metadata"),
    ({"name": "x", "metadata": []}, "metadata"),
    ({"name": "x", "webhook": {"url": "ftp://example.com/x"}}, "webhook.url"),
    ({"name": "x", "webhook": {"url": "http://127.0.0.1/x", "events": ["message"]}}, "webhook.events"),
    ({"name": "x", "webhook_url": "not a url"}, "webhook_url"),
    ({"name": "x", "proxy": {"enabled": True, "type": "http"}}, "proxy"),
    ({"name": "x", "proxy": {"type": "gopher", "host": "h", "port": 1}}, "proxy.type"),
    ({"name": "x", "proxy": {"host": "h", "port": 70000}}, "proxy.port"),
    ({"name": "x", "auto_reconnect": "sometimes"}, "auto_reconnect"),
    ({"name": "x", "colour": "blue"}, "colour"),
])
def test_bad_fields_are_422_naming_the_field(api, admin_headers, body, field):
    response = api.post("/sessions", headers=admin_headers, body=json.dumps(body))
    assert response.status_code == 422, response.body
    payload = response.json_body
    assert payload["code"] == "validation_failed" and payload["request_id"]
    assert any(d["field"] == field or d["field"].startswith(field + ".") for d in payload["details"]), payload


@pytest.mark.parametrize("raw,status,code", [
    ("{not json", 400, "invalid_json"),
    ("[1, 2]", 422, "validation_failed"),
    ('"text"', 422, "validation_failed"),
])
def test_malformed_bodies_are_4xx_never_500(api, admin_headers, raw, status, code):
    response = api.post("/sessions", headers=admin_headers, body=raw)
    assert response.status_code == status and response.json_body["code"] == code


def test_oversized_bodies_are_413(api, admin_headers):
    body = json.dumps({"name": "x", "metadata": {"blob": "x" * (1024 * 1024 + 10)}})
    response = api.post("/sessions", headers=admin_headers, body=body)
    assert response.status_code == 413 and response.json_body["code"] == "payload_too_large"


def test_read_shape_never_carries_secrets(api, make_session):
    created = make_session(webhook={"url": "http://127.0.0.1:9/hook", "events": ["message.*"]},
                           proxy={"type": "socks5", "host": "proxy.corp.example", "port": 1080,
                                  "username": "u", "password": "proxy-pass-123"},
                           metadata={"team": "sales"})
    response = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created))
    assert response.status_code == 200
    body = response.json_body
    assert body["proxy"] == {"enabled": True, "type": "socks5", "host": "proxy.corp.example", "port": 1080,
                             "username": "u", "has_password": True, "status": "active"}
    assert body["webhook"]["url"] == "http://127.0.0.1:9/hook"
    assert body["webhook"]["events"] == ["message.*"] and body["webhook"]["status"] == "active"
    assert body["metadata"] == {"team": "sales"}
    text = response.body.decode() if isinstance(response.body, bytes) else response.body
    for secret in (created["api_key"], created["webhook_secret"], "proxy-pass-123"):
        assert secret not in text
    assert "api_key" not in body and "webhook_secret" not in body


def test_webhook_url_alias_and_secret_shown_once(api, make_session):
    created = make_session(webhook_url="http://127.0.0.1:9/alias")
    assert created["webhook_secret"].startswith("whsec_")
    body = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created)).json_body
    assert body["webhook"]["url"] == "http://127.0.0.1:9/alias"


def test_list_filters_and_paginates(api, admin_headers, make_session):
    tag = uuid.uuid4().hex[:8]
    made = [make_session(name=f"List {tag} {i}") for i in range(5)]
    page = api.get(f"/sessions?name={tag}&limit=2&offset=1", headers=admin_headers).json_body
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert [s["session_id"] for s in page["sessions"]] == [m["session_id"] for m in made[1:3]]
    none = api.get(f"/sessions?name={tag}&status=connected", headers=admin_headers).json_body
    assert none["total"] == 0 and none["sessions"] == []
    literal = api.get("/sessions?name=%25", headers=admin_headers).json_body  # '%' is not a wildcard
    assert all("%" in s["name"] for s in literal["sessions"])
    assert api.get("/sessions?limit=501", headers=admin_headers).status_code == 422
    assert api.get("/sessions?status=sleeping", headers=admin_headers).status_code == 422


def test_update_is_partial_and_refuses_unknown_fields(api, make_session, db):
    created = make_session(proxy={"host": "p.example", "port": 3128, "username": "u", "password": "keep-me-1"},
                           metadata={"a": 1})
    sid, headers = created["session_id"], session_headers(created)
    response = api.put(f"/sessions/{sid}", headers=headers, body=json.dumps({"name": "Renamed"}))
    assert response.status_code == 200
    body = response.json_body
    assert body["name"] == "Renamed" and body["metadata"] == {"a": 1}
    assert body["proxy"]["has_password"] is True
    # the same proxy account without a password keeps the stored password ...
    body = api.put(f"/sessions/{sid}", headers=headers,
                   body=json.dumps({"proxy": {"host": "p.example", "port": 3128, "username": "u",
                                              "enabled": False}})).json_body
    assert body["proxy"]["enabled"] is False and body["proxy"]["has_password"] is True
    # ... but it never follows the proxy to another host
    body = api.put(f"/sessions/{sid}", headers=headers,
                   body=json.dumps({"proxy": {"host": "q.example", "port": 3128, "username": "u"}})).json_body
    assert body["proxy"]["host"] == "q.example" and body["proxy"]["has_password"] is False
    bad = api.put(f"/sessions/{sid}", headers=headers, body=json.dumps({"name": "x", "api_key": "nope-nope-nope-nope-nope"}))
    assert bad.status_code == 422 and bad.json_body["details"][0]["field"] == "api_key"
    cleared = api.put(f"/sessions/{sid}", headers=headers, body=json.dumps({"proxy": None})).json_body
    assert cleared["proxy"]["enabled"] is False and cleared["proxy"]["has_password"] is False


def test_update_webhook_shows_a_new_secret_once(api, make_session):
    created = make_session()
    sid, headers = created["session_id"], session_headers(created)
    first = api.put(f"/sessions/{sid}", headers=headers,
                    body=json.dumps({"webhook": {"url": "http://127.0.0.1:9/a"}})).json_body
    assert first["webhook_secret"].startswith("whsec_")
    second = api.put(f"/sessions/{sid}", headers=headers,
                     body=json.dumps({"webhook": {"url": "http://127.0.0.1:9/b", "events": ["session.*"]}})).json_body
    assert second.get("webhook_secret") is None  # unchanged secret is not shown again
    assert second["webhook"] == {**second["webhook"], "url": "http://127.0.0.1:9/b", "events": ["session.*"]}


def test_delete_is_204_then_404(api, admin_headers, make_session):
    created = make_session()
    sid = created["session_id"]
    assert api.delete(f"/sessions/{sid}", headers=session_headers(created)).status_code == 204
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 404
    assert api.get(f"/sessions/{sid}", headers=admin_headers).status_code == 404
    # the deleted session's key no longer opens anything
    assert api.get(f"/sessions/{sid}", headers=session_headers(created)).status_code == 401


def test_each_mutation_emits_its_lifecycle_event(api, admin_headers, make_session, db):
    created = make_session()
    sid = created["session_id"]
    api.put(f"/sessions/{sid}", headers=admin_headers, body=json.dumps({"name": "n2"}))
    api.delete(f"/sessions/{sid}", headers=admin_headers)
    rows = _outbox(db, sid)
    assert [r["event"] for r in rows] == ["session.created", "session.updated", "session.deleted"]
    sequences = [r["envelope"]["metadata"]["sequence"] for r in rows[:2]]
    assert sequences == [1, 2]
    assert rows[1]["envelope"]["data"] == {"changed": ["name"]}
    # and SQS took them (the outbox marks what the events queue accepted)
    with db.connection() as conn:
        unsent = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_id = %s AND sent_at IS NULL",
                              (sid,)).fetchone()["n"]
    assert unsent == 0
