"""Finding 7 (issue 11): every secret a rotation answer promised keeps signing until the
expiry that answer stated. S1 -> S2 -> S3 -> S4 within 24 h: a delivery carries one
`v1,` signature per live secret and verifies, with the `standardwebhooks` library, on
each of them. At most MAX_PREVIOUS previous secrets live at once; one more rotation is
refused (409) rather than cutting a promised secret short.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import session_headers

MAX_PREVIOUS = 5


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _rotate(api, created):
    return api.post(f"/sessions/{created['session_id']}/webhook/rotate-secret", headers=session_headers(created))


def _delivered(container, receiver, created, path):
    container.webhook_dispatcher.forget_session(created["session_id"])  # its config cache (5 s) is not under test
    envelope = container.events.publish(created["session_id"], "message.received", {"text": "oi"})
    receiver.wait_for(lambda: any(r.webhook_id == envelope["id"] for r in receiver.on(path)), 20, "the event")
    return [r for r in receiver.on(path) if r.webhook_id == envelope["id"]][0]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_three_rotations_every_promised_secret_still_signs(container, api, make_session, receiver, bridge):
    created = make_session(webhook={"url": receiver.url("/rot3"), "events": ["message.*"]})
    issued = [created["webhook_secret"]]
    answers = []
    for _ in range(3):
        answer = _rotate(api, created)
        assert answer.status_code == 200, answer.body
        answers.append(answer.json_body)
        issued.append(answer.json_body["webhook_secret"])
    assert len(set(issued)) == 4

    item = _delivered(container, receiver, created, "/rot3")
    assert len(item.headers["webhook-signature"].split(" ")) == 4
    for secret in issued:  # a receiver still on any of the four accepts the delivery
        assert Webhook(secret).verify(item.body, item.headers)["id"] == item.webhook_id

    # each answer says which secrets sign, until when; promises made earlier are not shortened
    last = answers[-1]
    assert last["max_previous_secrets"] == MAX_PREVIOUS
    assert [p["fingerprint"] for p in last["previous_secrets"]] == [_fingerprint(s) for s in issued[:3]]
    assert last["fingerprint"] == _fingerprint(issued[3])
    for n, answer in enumerate(answers):
        promised = _at(answer["previous_secret_expires_at"])
        assert timedelta(hours=23, minutes=59) < promised - datetime.now(timezone.utc) <= timedelta(hours=24)
        assert _at(last["previous_secrets"][n]["expires_at"]) == promised


def test_a_rotation_beyond_the_bound_is_409_and_cuts_no_promise_short(container, api, make_session, receiver, bridge,
                                                                      db):
    created = make_session(webhook={"url": receiver.url("/bound"), "events": ["message.*"]})
    issued = [created["webhook_secret"]]
    for _ in range(MAX_PREVIOUS):
        answer = _rotate(api, created)
        assert answer.status_code == 200, answer.body
        issued.append(answer.json_body["webhook_secret"])
    promised = [p["expires_at"] for p in answer.json_body["previous_secrets"]]

    refused = _rotate(api, created)
    assert refused.status_code == 409, refused.body
    assert refused.json_body["code"] == "too_many_webhook_secrets"
    assert refused.json_body["details"]["next_slot_at"] == promised[0]  # when the oldest promise ends
    assert "whsec_" not in refused.body.decode()

    item = _delivered(container, receiver, created, "/bound")
    assert len(item.headers["webhook-signature"].split(" ")) == MAX_PREVIOUS + 1
    for secret in issued:
        Webhook(secret).verify(item.body, item.headers)

    # once the oldest promise has run out, its secret stops signing and its slot is free
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET webhook_secrets_prev_expires_at[1] = now() - interval '1 second' "
                     "WHERE session_id = %s", (created["session_id"],))
    again = _rotate(api, created)
    assert again.status_code == 200, again.body
    assert [p["expires_at"] for p in again.json_body["previous_secrets"]][:MAX_PREVIOUS - 1] == promised[1:]
    item = _delivered(container, receiver, created, "/bound")
    with pytest.raises(WebhookVerificationError):
        Webhook(issued[0]).verify(item.body, item.headers)
    for secret in [*issued[1:], again.json_body["webhook_secret"]]:
        Webhook(secret).verify(item.body, item.headers)


def test_a_deleted_session_still_signs_with_every_promised_secret(container, api, make_session, receiver, bridge):
    created = make_session(webhook={"url": receiver.url("/tomb"), "events": ["session.deleted"]})
    issued = [created["webhook_secret"]]
    for _ in range(2):
        issued.append(_rotate(api, created).json_body["webhook_secret"])
    container.webhook_dispatcher.forget_session(created["session_id"])  # its config cache (5 s) is not under test
    assert api.delete(f"/sessions/{created['session_id']}", headers=session_headers(created)).status_code == 204
    receiver.wait_for(lambda: any(r.json["event"] == "session.deleted" for r in receiver.on("/tomb")), 20,
                      "session.deleted")
    item = [r for r in receiver.on("/tomb") if r.json["event"] == "session.deleted"][0]
    for secret in issued:
        Webhook(secret).verify(item.body, item.headers)
