"""Authentication and isolation, walked over every route the app registers."""
from __future__ import annotations

import json
import logging
import re
import uuid

import psycopg
import pytest

import app as app_module
from chalicelib.bootstrap import Container, reset_container
from chalicelib.config import load_settings
from chalicelib.routing import ADMIN, PUBLIC, SESSION
from tests.conftest import TEST_ADMIN_KEY

_PARAM = re.compile(r"{([^}]+)}")


def _headers(key):
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}


def _call(api, method, path, key):
    body = "{}" if method in ("POST", "PUT", "PATCH") else None
    return getattr(api, method.lower())(path, headers=_headers(key), body=body)


def test_every_route_enforces_its_access_level(api, make_session):
    """Each route x {no key, wrong key, other session's key, own key, admin key}."""
    specs = app_module.router.specs
    assert len(specs) >= 10
    routed = {(path, method) for path, methods in app_module.app.routes.items() for method in methods
              if method != "OPTIONS"}  # CORS preflights (chalicelib/cors.py): no key, no data
    assert {(s.path, s.method) for s in specs} == routed  # nothing bypasses the router
    failures = []
    for spec in specs:
        own, other = make_session(), make_session()  # fresh: a DELETE must not spoil the next route
        values = {name: "x" + uuid.uuid4().hex[:8] for name in _PARAM.findall(spec.path)}
        values["session_id"] = own["session_id"]
        path = spec.path.format(**values)
        expectations = {
            "no key": (None, {401} if spec.access != PUBLIC else None),
            "wrong key": ("zses_not-a-real-key-" + uuid.uuid4().hex, {401} if spec.access != PUBLIC else None),
            "other session's key": (other["api_key"], {403} if spec.access != PUBLIC else None),
            "own key": (own["api_key"], {403} if spec.access == ADMIN else None),
            "admin key": (TEST_ADMIN_KEY, None),
        }
        for label, (key, expected) in expectations.items():
            status = _call(api, spec.method, path, key).status_code
            if expected is None:
                ok = status not in (401, 403, 500)
            else:
                ok = status in expected
            if not ok:
                failures.append(f"{spec.method} {spec.path} with {label}: {status} (expected {expected or 'allowed'})")
    assert failures == []


def test_both_header_forms_work_and_errors_name_the_problem(api, make_session):
    created = make_session()
    path = f"/sessions/{created['session_id']}"
    assert api.get(path, headers={"X-API-Key": created["api_key"]}).status_code == 200
    assert api.get(path, headers={"Authorization": f"bearer {created['api_key']}"}).status_code == 200
    missing = api.get(path)
    assert missing.status_code == 401 and missing.json_body["code"] == "missing_api_key"
    wrong = api.get(path, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and wrong.json_body["code"] == "invalid_api_key"
    other = make_session()
    forbidden = api.get(path, headers={"X-API-Key": other["api_key"]})
    assert forbidden.status_code == 403 and forbidden.json_body["code"] == "wrong_session"
    admin_only = api.get("/sessions", headers={"X-API-Key": created["api_key"]})
    assert admin_only.status_code == 403 and admin_only.json_body["code"] == "admin_only"


def test_a_session_key_is_stored_nowhere_in_plaintext(make_session, stack):
    key = "plaintext-probe-" + uuid.uuid4().hex
    created = make_session(api_key=key, webhook={"url": "http://127.0.0.1:9/h"},
                           proxy={"host": "p", "port": 1, "password": "proxy-probe-" + uuid.uuid4().hex})
    secrets = [key, created["webhook_secret"]]
    found = []
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t'):
                found += [f"{table}: {s[:12]}..." for s in secrets if s in row[0]]
    assert found == []


def test_keys_never_reach_the_logs(api, make_session, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    created = make_session()
    api.get(f"/sessions/{created['session_id']}", headers={"X-API-Key": created["api_key"]})
    api.get("/sessions", headers={"X-API-Key": created["api_key"]})
    api.get("/sessions", headers={"X-API-Key": "wrong-" + created["api_key"]})
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text
    assert created["api_key"] not in text and TEST_ADMIN_KEY not in text


def test_mutations_are_audited_without_secrets(api, admin_headers, make_session):
    created = make_session(webhook={"url": "http://127.0.0.1:9/a"})
    sid = created["session_id"]
    api.put(f"/sessions/{sid}", headers={"X-API-Key": created["api_key"]}, body=json.dumps({"name": "z"}))
    entries = api.get(f"/audit?session_id={sid}", headers=admin_headers).json_body["entries"]
    actions = [(e["actor"], e["action"], e["details"]["status"]) for e in entries]
    assert ("admin", "create_session", 201) in actions
    assert (f"session:{sid}", "update_session", 200) in actions
    assert all(e["request_id"] for e in entries)
    text = json.dumps(entries)
    assert created["api_key"] not in text and created["webhook_secret"] not in text
    assert api.get("/audit", headers={"X-API-Key": created["api_key"]}).status_code == 403


@pytest.fixture
def admin_key_in_secrets_manager(stack, settings):
    """A container whose admin key lives only in the stack's Secrets Manager secret."""
    env = {k: v for k, v in stack.env.items() if k != "ADMIN_API_KEY"}
    env["ADMIN_API_KEY_SECRET_ARN"] = stack.stack_outputs["AdminApiKeySecretArn"]
    container = Container(load_settings(env))
    reset_container(container)
    yield container, container.secretsmanager.get_secret_value(
        SecretId=env["ADMIN_API_KEY_SECRET_ARN"])["SecretString"]
    reset_container(None)


def test_admin_key_can_come_from_secrets_manager(admin_key_in_secrets_manager):
    from chalice.test import Client

    _container, secret_key = admin_key_in_secrets_manager
    with Client(app_module.app) as client:
        assert client.http.get("/sessions", headers={"X-API-Key": secret_key}).status_code == 200
        assert client.http.get("/sessions", headers={"X-API-Key": TEST_ADMIN_KEY}).status_code == 401


def test_access_levels_are_known():
    assert {spec.access for spec in app_module.router.specs} <= {PUBLIC, ADMIN, SESSION}
