"""Finding 6 (issue 11): bad input is a 400/422 naming the problem, never a 500.

Classes: JSON nested thousands of levels deep, NUL in any string (keys and values, body,
query, path), NaN/Infinity, lone surrogates (as a JSON escape, and as bytes that are not
UTF-8). Bodies and queries go through chalice's test client (what `chalice local` runs);
path parameters also through a Lambda event built the way API Gateway builds it, where
`%00` in the path arrives URL-decoded as a real NUL (finding 15's suspicion).
"""
from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from tests.conftest import TEST_ADMIN_KEY, session_headers


def _details_fields(response) -> set[str]:
    return {detail["field"] for detail in response.json_body.get("details") or []}


def _assert_rejected(response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, (response.status_code, response.body)
    body = response.json_body
    assert set(body) >= {"code", "message", "request_id"}
    if field is not None:
        assert field in _details_fields(response), body


MESSAGE = {"type": "text", "to": "5511999999999"}


@pytest.fixture
def target(make_session):
    return make_session()


# -- NUL and lone surrogates in the JSON tree: 422 naming the JSON path -------------------
@pytest.mark.parametrize("route,body,field", [
    ("POST /sessions", {"name": "a\u0000b"}, "name"),
    ("POST /sessions", {"name": "x", "metadata": {"k": "v\u0000"}}, "metadata.k"),
    ("POST /sessions", {"name": "x", "metadata": {"deep": [1, {"k": "\u0000"}]}}, "metadata.deep.1.k"),
    ("POST /sessions", {"name": "x", "metadata": {"k\u0000": "v"}}, "metadata.k\\x00"),
    ("POST /sessions", {"name": "\ud800"}, "name"),
    ("POST /sessions", {"name": "x", "metadata": {"\udfff": 1}}, "metadata.\\udfff"),
    ("PUT /sessions/{sid}", {"name": "\u0000"}, "name"),
    ("PUT /sessions/{sid}", {"metadata": {"a": ["\ud800"]}}, "metadata.a.0"),
    ("POST /sessions/{sid}/messages", {**MESSAGE, "text": "hi\u0000"}, "text"),
    ("POST /sessions/{sid}/messages", {**MESSAGE, "text": "hi", "idempotency_key": "k\u0000"}, "idempotency_key"),
    ("POST /sessions/{sid}/messages", {**MESSAGE, "text": "\ud83d"}, "text"),
    ("POST /sessions/{sid}/proxy", {"host": "127.0.0.1", "port": 3128, "username": "u\u0000"}, "username"),
    ("POST /webhooks/send", {"session_id": "{sid}", "data": {"x": "\u0000"}}, "data.x"),
    ("POST /webhooks/send", {"session_id": "{sid}", "data": {"x": "\udc00"}}, "data.x"),
])
def test_nul_and_lone_surrogates_in_a_body_are_422_naming_the_field(api, admin_headers, target, route, body, field):
    method, path = route.split(" ")
    sid = target["session_id"]
    raw = json.dumps(body).replace("{sid}", sid)  # ensure_ascii: NUL and surrogates as \u escapes
    response = api.request(method, path.format(sid=sid), headers=admin_headers, body=raw.encode())
    _assert_rejected(response, 422, field)
    assert response.json_body["code"] == "validation_failed"


def test_a_session_key_gets_the_same_422(api, target):
    response = api.post(f"/sessions/{target['session_id']}/messages", headers=session_headers(target),
                        body=json.dumps({**MESSAGE, "text": "\u0000"}))
    _assert_rejected(response, 422, "text")


# -- bodies that are not acceptable JSON at all: 400 -------------------------------------
@pytest.mark.parametrize("raw", [
    b'{"name": "x", "metadata": {"n": NaN}}',
    b'{"name": "x", "metadata": {"n": Infinity}}',
    b'{"name": "x", "metadata": {"n": -Infinity}}',
], ids=["nan", "infinity", "-infinity"])
def test_nan_and_infinity_are_400(api, admin_headers, raw):
    response = api.post("/sessions", headers=admin_headers, body=raw)
    _assert_rejected(response, 400)
    assert response.json_body["code"] == "invalid_json"
    assert "NaN" in response.json_body["message"] or "Infinity" in response.json_body["message"]


@pytest.mark.parametrize("raw", [
    b'{"name": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes (CESU): not valid UTF-8
    b'{"name": "\xff\xfe"}',
], ids=["surrogate-bytes", "invalid-bytes"])
def test_bytes_that_are_not_utf8_are_400(api, admin_headers, raw):
    response = api.post("/sessions", headers=admin_headers, body=raw)
    _assert_rejected(response, 400)
    assert response.json_body["code"] == "invalid_json" and "UTF-8" in response.json_body["message"]


DEEP_BODIES = {
    "POST /sessions": '{"name": "x", "metadata": {"a": %s}}',
    "PUT /sessions/{sid}": '{"metadata": {"a": %s}}',
    "POST /webhooks/send": '{"session_id": "{sid}", "data": {"a": %s}}',
}


@pytest.mark.parametrize("depth", [100, 5000, 100_000])
@pytest.mark.parametrize("route", sorted(DEEP_BODIES))
def test_deep_nesting_is_400_not_a_recursion_error(api, admin_headers, target, route, depth):
    method, path = route.split(" ")
    sid = target["session_id"]
    raw = DEEP_BODIES[route].replace("{sid}", sid) % ("[" * depth + "]" * depth)
    response = api.request(method, path.format(sid=sid), headers=admin_headers, body=raw.encode())
    _assert_rejected(response, 400)
    assert response.json_body["code"] == "invalid_json" and "deep" in response.json_body["message"]


def test_nesting_within_the_limit_is_accepted(api, admin_headers):
    nested = {"a": {"b": {"c": [[[["fine"]]]]}}}
    response = api.post("/sessions", headers=admin_headers, body=json.dumps({"name": "x", "metadata": nested}))
    assert response.status_code == 201, response.body


# -- query parameters: 422 naming the parameter (as pydantic names query fields), before any SQL
@pytest.mark.parametrize("url,field", [
    ("/sessions?name=%00", "name"),
    ("/sessions?name=a%00b&limit=5", "name"),
    ("/audit?session_id=%00", "session_id"),
    ("/sessions/{sid}/webhook/deliveries?status=%00", "status"),
])
def test_nul_in_a_query_parameter_is_422_naming_it(api, admin_headers, target, url, field):
    response = api.get(url.format(sid=target["session_id"]), headers=admin_headers)
    _assert_rejected(response, 422, field)


def test_invalid_percent_encoding_in_a_query_is_not_a_500(api, admin_headers):
    # parse_qs decodes %ED%A0%80 with errors="replace" (U+FFFD): a harmless search
    response = api.get("/sessions?name=%ED%A0%80", headers=admin_headers)
    assert response.status_code == 200, response.body


# -- path parameters: as chalice local passes them, and as API Gateway does ---------------
def test_percent_encoded_nul_in_the_path_through_the_test_client_is_not_a_500(api, admin_headers):
    # chalice local does not URL-decode path parameters: the view sees the text "a%00b"
    response = api.get("/sessions/a%00b", headers=admin_headers)
    assert response.status_code == 404, response.body


def _api_gateway_call(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> dict:
    """Invoke the API Lambda with the event API Gateway would send: path parameters URL-decoded."""
    from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

    import app as app_module

    converter = LambdaEventConverter(RouteMatcher(list(app_module.app.routes)))
    event = converter.create_lambda_event(method=method, path=path, headers=headers, body=body)
    event["pathParameters"] = {name: unquote(value) for name, value in (event["pathParameters"] or {}).items()}
    answer = app_module.app(event, LambdaContext("api_handler", 256))
    answer["json"] = json.loads(answer["body"]) if answer.get("body") else None
    return answer


@pytest.mark.parametrize("method,path,param", [
    ("GET", "/sessions/a%00b", "session_id"),
    ("DELETE", "/sessions/a%00b", "session_id"),
    ("GET", "/sessions/a%ED%A0%80b/status", "session_id"),
    ("GET", "/sessions/{sid}/webhook/deliveries/d%00x", "delivery_id"),
    ("GET", "/sessions/{sid}/commands/c%00x", "command_id"),
])
def test_decoded_nul_in_a_path_parameter_under_api_gateway_is_422_naming_it(container, target, method, path, param):
    path = path.format(sid=target["session_id"])
    if "%ED%A0%80" in path:  # API Gateway hands over a lone surrogate as text: build it directly
        path = path.replace("%ED%A0%80", "%00")
    answer = _api_gateway_call(method, path, {"Authorization": f"Bearer {TEST_ADMIN_KEY}"})
    assert answer["statusCode"] == 422, answer
    assert answer["json"]["code"] == "validation_failed"
    assert f"path.{param}" in {d["field"] for d in answer["json"]["details"]}


def test_lone_surrogate_in_a_path_parameter_under_api_gateway_is_422(container, target):
    from chalice.local import LambdaContext, LambdaEventConverter, RouteMatcher

    import app as app_module

    converter = LambdaEventConverter(RouteMatcher(list(app_module.app.routes)))
    event = converter.create_lambda_event(method="GET", path=f"/sessions/{target['session_id']}/commands/x",
                                          headers={"Authorization": f"Bearer {TEST_ADMIN_KEY}"}, body=b"")
    event["pathParameters"]["command_id"] = "a\ud800b"
    answer = app_module.app(event, LambdaContext("api_handler", 256))
    assert answer["statusCode"] == 422, answer
    assert "path.command_id" in {d["field"] for d in json.loads(answer["body"])["details"]}


def test_a_session_key_with_a_nul_path_is_refused_not_a_500(container, target):
    answer = _api_gateway_call("GET", "/sessions/a%00b", session_headers(target))
    assert answer["statusCode"] in (403, 422), answer


def test_a_request_id_header_with_control_characters_is_replaced(api, admin_headers):
    response = api.post("/sessions", headers={**admin_headers, "X-Request-Id": "abc\x00def"},
                        body=json.dumps({"name": "x"}))
    assert response.status_code == 201, response.body
    assert "\x00" not in response.headers["X-Request-Id"]
