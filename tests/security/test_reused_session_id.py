"""Issue 11, finding 1: a session id reused after a delete inherits nothing of the old tenant.

Admin deletes `beta` and creates a new `beta`. Before the fix the new key could read the old
tenant's webhook deliveries (payloads with inbound texts and phone numbers) and commands, an
old `idempotency_key` returned the old command (the new message was never sent), and the new
session's `session.created` was POSTed to the OLD tenant's webhook, signed with the old secret.
Everything a session owns is now keyed by the session row's id (`sessions.id`)."""
from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

from standardwebhooks.webhooks import Webhook

from tests.conftest import session_headers
from tests.support.webhook_receiver import wait_until


def _delivered(receiver, path, event_id):
    return [r for r in receiver.on(path) if r.webhook_id == event_id]


def _create(api, admin_headers, sid, receiver, path):
    answer = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "beta", "session_id": sid, "webhook": {"url": receiver.url(path)}}))
    assert answer.status_code == 201, answer.body
    receiver.set_secrets(path, answer.json_body["webhook_secret"])
    return answer.json_body


def _events_of(db, sid, event):
    with db.connection() as conn:
        rows = conn.execute("SELECT envelope FROM event_outbox WHERE session_id = %s AND event = %s "
                            "ORDER BY created_at", (sid, event)).fetchall()
    return [r["envelope"] for r in rows]


def test_a_new_session_with_an_old_id_sees_nothing_of_the_old_one(container, api, admin_headers, receiver,
                                                                   bridge, db):
    sid = f"beta-{uuid.uuid4().hex[:8]}"
    old = _create(api, admin_headers, sid, receiver, "/old")
    old_headers = session_headers(old)
    # the old tenant's history: a delivered inbound message with a phone number, a sent command
    inbound = container.events.publish(sid, "message.received",
                                       {"from": {"phone": "5511988887777"}, "text": "my secret order"})
    receiver.wait_for(lambda: _delivered(receiver, "/old", inbound["id"]), 20, "the old tenant's delivery")
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET status = 'authenticated' WHERE session_id = %s", (sid,))
    sent = api.post(f"/sessions/{sid}/messages", headers=old_headers, body=json.dumps(
        {"to": "5511988887777", "type": "text", "text": "old", "idempotency_key": "order-1"}))
    assert sent.status_code == 202, sent.body
    old_command = sent.json_body["command_id"]
    wait_until(lambda: api.get(f"/sessions/{sid}/webhook/deliveries", headers=old_headers)
               .json_body["total"] >= 2, 20, "the old deliveries recorded")

    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    new = _create(api, admin_headers, sid, receiver, "/new")
    new_headers = session_headers(new)
    assert new["id"] != old["id"]

    # the new session's session.created goes to the NEW webhook only, signed with the new secret
    created = _events_of(db, sid, "session.created")[-1:]  # the new session's (the outbox is ordered)
    receiver.wait_for(lambda: _delivered(receiver, "/new", created[0]["id"]), 20, "the new session.created")
    deleted = [e for e in _events_of(db, sid, "session.deleted")]
    receiver.wait_for(lambda: _delivered(receiver, "/old", deleted[0]["id"]), 20, "session.deleted at the old URL")
    assert not _delivered(receiver, "/old", created[0]["id"]), "the new tenant's event reached the old webhook"
    item = _delivered(receiver, "/new", created[0]["id"])[0]
    Webhook(new["webhook_secret"]).verify(item.body, item.headers)
    assert not _delivered(receiver, "/new", deleted[0]["id"]), "the old tenant's event reached the new webhook"

    # deliveries: only the new session's own
    listed = api.get(f"/sessions/{sid}/webhook/deliveries", headers=new_headers).json_body
    assert {d["event_id"] for d in listed["deliveries"]} <= {created[0]["id"]}
    assert "my secret order" not in json.dumps(listed)
    stats = api.get(f"/webhooks/sessions/{sid}/stats", headers=new_headers).json_body
    assert stats["total"] <= 1
    assert api.get(f"/sessions/{sid}/stats", headers=new_headers).status_code == 200
    with db.connection() as conn:
        old_delivery = conn.execute("SELECT id FROM webhook_deliveries WHERE event_id = %s",
                                    (inbound["id"],)).fetchone()
    if old_delivery is not None:  # (final deliveries of a deleted session are deleted with it)
        path = f"/sessions/{sid}/webhook/deliveries/{old_delivery['id']}"
        assert api.get(path, headers=new_headers).status_code == 404
        assert api.post(path + "/redeliver", headers=new_headers).status_code == 404

    # commands: the old one is not readable, and an old idempotency key sends a NEW message
    assert api.get(f"/sessions/{sid}/commands/{old_command}", headers=new_headers).status_code == 404
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET status = 'authenticated' WHERE session_id = %s", (sid,))
    again = api.post(f"/sessions/{sid}/messages", headers=new_headers, body=json.dumps(
        {"to": "5511988887777", "type": "text", "text": "new", "idempotency_key": "order-1"}))
    assert again.status_code == 202, again.body
    assert again.json_body["command_id"] != old_command
    view = api.get(f"/sessions/{sid}/commands/{again.json_body['command_id']}", headers=new_headers).json_body
    assert view["status"] == "queued"
    # and the old key is gone with its session
    assert api.get(f"/sessions/{sid}", headers=old_headers).status_code == 401


def test_a_deleted_sessions_runner_writes_never_reach_its_successor(container, api, admin_headers, make_session,
                                                                   db):
    """The runner side: a stale actor or media worker of the deleted row writes nothing into
    the new row (state, counters, message log, events), and the new row's commands are not
    claimed for the old one."""
    from chalicelib.repositories.session_store import SessionStore
    from runner_container.inbound_media import record_message_event

    sid = f"beta-{uuid.uuid4().hex[:8]}"
    old = make_session(session_id=sid)
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    new = make_session(session_id=sid)
    sent_events: list = []
    runner = SimpleNamespace(store=SessionStore(db, container.events), settings=SimpleNamespace(runner_id="r-stale"),
                             events=SimpleNamespace(send=sent_events.extend),
                             metrics=SimpleNamespace(events=SimpleNamespace(
                                 labels=lambda **_: SimpleNamespace(inc=lambda: None))))
    data = {"message_id": "3EB0OLD", "type": "text", "text": "to the old number",
            "chat": {"jid": "5511912345678@s.whatsapp.net"}, "from": {"jid": "5511912345678@s.whatsapp.net"},
            "from_me": False}
    assert record_message_event(runner, sid, "message.received", data, session_uid=old["id"]) is False
    assert sent_events == [] and not _events_of(db, sid, "message.received")
    assert record_message_event(runner, sid, "message.received", data, session_uid=new["id"]) is True

    with db.connection() as conn:
        conn.execute("UPDATE sessions SET status = 'authenticated' WHERE session_id = %s", (sid,))
    command = api.post(f"/sessions/{sid}/messages", headers=session_headers(new), body=json.dumps(
        {"to": "5511988887777", "type": "text", "text": "hi"})).json_body["command_id"]
    assert container.commands.repo.claim(command, "r-stale", 3.0, session_uid=old["id"]) is None
    claimed = container.commands.repo.claim(command, "r-live", 3.0, session_uid=new["id"])
    assert claimed is not None and str(claimed["session_uid"]) == new["id"]
