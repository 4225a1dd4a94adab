"""Finding 11 (issue 11): a custom webhook secret must be one Standard Webhooks libraries
can verify with: `whsec_` + base64 of 24 to 64 bytes. Anything else is 422, where a
custom secret can be given (create and update a session)."""
from __future__ import annotations

import base64
import json
import secrets

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import session_headers


def _whsec(n: int) -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(n)).decode()


def test_a_delivery_signed_with_a_custom_secret_verifies_with_standardwebhooks(
        container, api, make_session, receiver, bridge):
    custom = _whsec(24)
    created = make_session(webhook={"url": receiver.url("/custom"), "events": ["message.*"], "secret": custom})
    assert "webhook_secret" not in created  # a secret the caller chose is not echoed
    envelope = container.events.publish(created["session_id"], "message.received", {"text": "oi"})
    receiver.wait_for(lambda: any(r.webhook_id == envelope["id"] for r in receiver.on("/custom")), 20, "the event")
    item = [r for r in receiver.on("/custom") if r.webhook_id == envelope["id"]][0]
    assert Webhook(custom).verify(item.body, item.headers)["id"] == envelope["id"]


NOT_STANDARD = [
    "this is my very own custom webhook secret",  # the old form that no library could verify
    "whsec_" + "not base64 at all, not at all!!",
    "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),  # URL-safe alphabet
    "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode().rstrip("="),  # padding is part of base64
    "whsec_" + base64.b64encode(secrets.token_bytes(23)).decode(),  # 23 bytes: too short
    "whsec_" + base64.b64encode(secrets.token_bytes(65)).decode(),  # 65 bytes: too long
    base64.b64encode(secrets.token_bytes(32)).decode(),  # base64 without the whsec_ prefix
]


@pytest.mark.parametrize("secret", NOT_STANDARD, ids=range(len(NOT_STANDARD)))
def test_a_secret_that_is_not_whsec_base64_is_422_on_create(api, admin_headers, secret):
    response = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "x", "webhook": {"url": "http://127.0.0.1:9/hook", "secret": secret}}))
    assert response.status_code == 422, response.body
    assert "webhook.secret" in {d["field"] for d in response.json_body["details"]}
    assert secret not in response.body.decode()  # a rejected secret is not echoed back either


@pytest.mark.parametrize("secret", NOT_STANDARD[:2], ids=range(2))
def test_a_secret_that_is_not_whsec_base64_is_422_on_update(api, make_session, secret):
    created = make_session()
    response = api.put(f"/sessions/{created['session_id']}", headers=session_headers(created), body=json.dumps(
        {"webhook": {"url": "http://127.0.0.1:9/hook", "secret": secret}}))
    assert response.status_code == 422, response.body
    assert "webhook.secret" in {d["field"] for d in response.json_body["details"]}


@pytest.mark.parametrize("size", [24, 32, 64])
def test_standard_secrets_of_24_to_64_bytes_are_accepted(api, admin_headers, size):
    response = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "x", "webhook": {"url": "http://127.0.0.1:9/hook", "secret": _whsec(size)}}))
    assert response.status_code == 201, response.body
