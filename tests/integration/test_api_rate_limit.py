"""Per-key request limits (API_RATE_LIMIT, API_ADMIN_RATE_LIMIT): 429 `rate_limited` with
Retry-After, RateLimit-* fields on every answer to a key, one bucket per key identity shared
by every API instance, a separate limit for the admin key, and `off`."""
from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.bootstrap import Container, reset_container
from chalicelib.config import load_settings
from chalicelib.errors import ConfigError
from chalicelib.repositories.rate_limits import RateLimitRepository
from chalicelib.services.auth import key_digest
from tests.conftest import TEST_ADMIN_KEY

ADMIN = {"Authorization": f"Bearer {TEST_ADMIN_KEY}", "Content-Type": "application/json"}


def _key(created: dict) -> dict:
    return {"X-API-Key": created["api_key"]}


@pytest.fixture
def instances(settings):
    """Build API instances (each its own container and connection pool, as two Lambdas) with
    given limits; the one built last serves requests. The admin bucket starts full."""
    built: list[Container] = []

    def build(session=(3, 60.0), admin=(1000, 60.0)) -> Container:
        instance = Container(dataclasses.replace(settings, api_rate_limit=session, api_admin_rate_limit=admin))
        built.append(instance)
        reset_container(instance)
        return instance

    first = build()
    RateLimitRepository(first.db).reset("api:admin")
    yield build
    reset_container(None)
    for instance in built:
        instance.close()


@pytest.fixture
def client():
    with Client(app_module.app, stage_name="local") as test_client:
        yield test_client.http


def _create(client) -> dict:
    body = {"name": "limited", "session_id": f"rl-{uuid.uuid4().hex[:10]}"}
    response = client.post("/sessions", headers=ADMIN, body=json.dumps(body))
    assert response.status_code == 201, response.body
    return response.json_body


def test_every_answer_to_a_key_carries_the_ratelimit_fields(instances, client):
    instances(session=(5, 60.0))
    created = _create(client)
    path = f"/sessions/{created['session_id']}"
    ok = client.get(path, headers=_key(created))
    assert ok.status_code == 200
    assert ok.headers["RateLimit-Limit"] == "5" and ok.headers["RateLimit-Remaining"] == "4"
    assert 0 < int(ok.headers["RateLimit-Reset"]) <= 60 and ok.headers["RateLimit-Policy"] == "5;w=60"
    forbidden = client.get("/sessions", headers=_key(created))  # admin-only route: 403, still charged
    assert forbidden.status_code == 403 and forbidden.headers["RateLimit-Remaining"] == "3"
    missing = client.get(f"/sessions/{created['session_id']}/commands/{uuid.uuid4()}", headers=_key(created))
    assert missing.status_code == 404 and missing.headers["RateLimit-Remaining"] == "2"
    public = client.get("/health")
    assert "RateLimit-Limit" not in public.headers  # no key, nothing to count


def test_over_the_limit_answers_429_rate_limited_with_retry_after(instances, client):
    instances(session=(3, 60.0))
    created = _create(client)
    path = f"/sessions/{created['session_id']}"
    assert [client.get(path, headers=_key(created)).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get(path, headers=_key(created))
    assert refused.status_code == 429
    assert refused.json_body["code"] == "rate_limited" and refused.json_body["request_id"]
    assert 19 <= int(refused.headers["Retry-After"]) <= 20  # one token per 20 s
    assert refused.json_body["details"]["retry_after_seconds"] == int(refused.headers["Retry-After"])
    assert refused.headers["RateLimit-Limit"] == "3" and refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= int(refused.headers["Retry-After"])
    # a mutating request over the limit does nothing
    update = client.put(path, headers={**_key(created), "Content-Type": "application/json"},
                        body=json.dumps({"name": "renamed"}))
    assert update.status_code == 429
    assert client.get(path, headers=ADMIN).json_body["name"] == "limited"
    # nor is it audited: a flood of refused writes must not become a flood of audit rows
    entries = client.get(f"/audit?session_id={created['session_id']}", headers=ADMIN).json_body["entries"]
    assert [e["action"] for e in entries] == ["create_session"]


def test_the_limit_holds_across_api_instances(instances, client):
    instances(session=(4, 60.0))
    created = _create(client)
    path = f"/sessions/{created['session_id']}"
    assert [client.get(path, headers=_key(created)).status_code for _ in range(2)] == [200, 200]
    instances(session=(4, 60.0))  # another Lambda instance: its own pool, no local memory
    answers = [client.get(path, headers=_key(created)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Remaining"] == "1"


def test_the_admin_key_has_its_own_higher_limit(instances, client):
    instances(session=(2, 60.0), admin=(7, 60.0))
    created, other = _create(client), _create(client)  # admin requests 1 and 2
    path = f"/sessions/{created['session_id']}"
    assert [client.get(path, headers=_key(created)).status_code for _ in range(3)] == [200, 200, 429]
    admin_answers = [client.get(path, headers=ADMIN) for _ in range(6)]  # admin requests 3..8
    assert [a.status_code for a in admin_answers] == [200] * 5 + [429]
    assert admin_answers[0].headers["RateLimit-Limit"] == "7"
    # another session's key has its own bucket
    assert client.get(f"/sessions/{other['session_id']}", headers=_key(other)).status_code == 200


def test_off_turns_a_limit_off(instances, client):
    instances(session=None, admin=None)
    created = _create(client)
    path = f"/sessions/{created['session_id']}"
    answers = [client.get(path, headers=_key(created)) for _ in range(10)]
    assert {a.status_code for a in answers} == {200}
    assert "RateLimit-Limit" not in answers[0].headers


def test_buckets_are_named_by_the_session_row_never_by_the_key(instances, client, db):
    instances(session=(5, 60.0))
    created = _create(client)
    client.get(f"/sessions/{created['session_id']}", headers=_key(created))
    with db.connection() as conn:
        buckets = [row["bucket"] for row in conn.execute("SELECT bucket FROM rate_limits").fetchall()]
    assert f"api:session:{created['id']}" in buckets and "api:admin" in buckets
    secret_forms = (created["api_key"], key_digest(created["api_key"]), TEST_ADMIN_KEY, key_digest(TEST_ADMIN_KEY))
    assert not [b for b in buckets if any(form in b for form in secret_forms)]


def test_a_recreated_session_id_starts_with_its_own_bucket(instances, client):
    instances(session=(2, 60.0))
    created = _create(client)
    path = f"/sessions/{created['session_id']}"
    assert [client.get(path, headers=_key(created)).status_code for _ in range(3)] == [200, 200, 429]
    assert client.delete(path, headers=ADMIN).status_code == 204
    again = client.post("/sessions", headers=ADMIN, body=json.dumps({"name": "again",
                                                                      "session_id": created["session_id"]}))
    assert again.status_code == 201
    assert client.get(path, headers=_key(again.json_body)).status_code == 200


def test_a_session_key_is_looked_up_and_charged_in_one_round_trip(instances, client):
    instance = instances(session=(5, 60.0))
    created = _create(client)

    def unused(*args, **kwargs):
        raise AssertionError("a second round trip")

    instance.api_limits.repo.take = unused  # the separate charge (the admin key's)
    instance.api_limits._find_by_key_digest = unused  # the plain lookup (limit off)
    answer = client.get(f"/sessions/{created['session_id']}", headers=_key(created))
    assert answer.status_code == 200 and answer.headers["RateLimit-Remaining"] == "4"
    assert client.get("/sessions", headers={"X-API-Key": "zses_unknown-" + uuid.uuid4().hex}).status_code == 401


def test_an_admin_refusal_is_answered_locally_until_retry_after(instances, client):
    instance = instances(session=(5, 60.0), admin=(2, 3600.0))
    RateLimitRepository(instance.db).reset("api:admin")
    created = _create(client)  # admin request 1
    path = f"/sessions/{created['session_id']}"
    assert client.get(path, headers=ADMIN).status_code == 200
    assert client.get(path, headers=ADMIN).status_code == 429  # the database said no
    calls = []
    repo = instance.api_limits.repo
    original = repo.take
    repo.take = lambda *a, **k: calls.append(a) or original(*a, **k)
    flood = [client.get(path, headers=ADMIN) for _ in range(20)]
    assert {a.status_code for a in flood} == {429} and calls == []  # no round trip for a known refusal
    assert 1790 <= int(flood[-1].headers["Retry-After"]) <= 1800  # one token per 30 min
    assert client.get(path, headers=_key(created)).status_code == 200  # the session key is not the admin's


def test_settings_parse_limits_and_name_a_bad_value(stack):
    settings = load_settings({**stack.env, "API_RATE_LIMIT": "120/1m", "API_ADMIN_RATE_LIMIT": "off"})
    assert settings.api_rate_limit == (120, 60.0) and settings.api_admin_rate_limit is None
    defaults = load_settings({k: v for k, v in stack.env.items() if not k.startswith("API_")})
    assert defaults.api_rate_limit == (600, 60.0) and defaults.api_admin_rate_limit == (6000, 60.0)
    with pytest.raises(ConfigError) as error:
        load_settings({**stack.env, "API_RATE_LIMIT": "lots"})
    assert "API_RATE_LIMIT=lots" in str(error.value)


def test_the_limit_holds_across_two_real_api_processes(stack):
    """Two `chalice local` processes (two instances, each its own pool and memory) on one database."""
    import subprocess
    import urllib.error
    import urllib.request

    from devstack import PROJECT_ROOT
    from devstack.processes import free_port, start_child, wait_http

    def call(base, method, path, headers, body=None):
        request = urllib.request.Request(base + path, method=method, headers=headers, data=body)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    bases, children = [], []
    try:
        for _ in range(2):
            port = free_port()
            env = {**stack.env, "SERVER_PORT": str(port), "API_RATE_LIMIT": "4/1m"}
            children.append(start_child("api", [str(PROJECT_ROOT / ".venv" / "bin" / "chalice"), "local",
                                                "--stage", "local", "--host", "127.0.0.1", "--port", str(port),
                                                "--no-autoreload"], env, str(PROJECT_ROOT),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            bases.append(f"http://127.0.0.1:{port}")
        for base, child in zip(bases, children):
            wait_http(f"{base}/health", timeout=60, child=child)
        status, _, body = call(bases[0], "POST", "/sessions", ADMIN,
                               json.dumps({"name": "two", "session_id": f"rl2-{uuid.uuid4().hex[:8]}"}).encode())
        assert status == 201, body
        created = json.loads(body)
        path, key = f"/sessions/{created['session_id']}", _key(created)
        answers = [call(base, "GET", path, key) for base in (bases[0], bases[1], bases[0], bases[1], bases[1])]
        assert [a[0] for a in answers] == [200, 200, 200, 200, 429]
        assert [a[1]["RateLimit-Remaining"] for a in answers] == ["3", "2", "1", "0", "0"]
    finally:
        for child in children:
            child.stop()
