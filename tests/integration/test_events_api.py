"""GET /sessions/{session_id}/events: the session's events read back from the outbox
(the console's timeline). Scoped to the session row, paged by an opaque cursor, bounded
by EVENT_RETENTION."""
from __future__ import annotations

import json
import uuid

from tests.conftest import session_headers


def _events(api, sid, headers, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    answer = api.get(f"/sessions/{sid}/events" + (f"?{qs}" if qs else ""), headers=headers)
    assert answer.status_code == 200, answer.body
    return answer.json_body


def test_a_session_reads_its_events_oldest_first_and_polls_with_the_cursor(api, container, make_session):
    created = make_session()
    sid, headers = created["session_id"], session_headers(created)
    first = _events(api, sid, headers)
    assert [e["event"] for e in first["events"]] == ["session.created"]
    assert first["has_more"] is False
    assert first["events"][0]["metadata"]["session_uid"] == created["id"]

    assert _events(api, sid, headers, after=first["cursor"])["events"] == []  # nothing new
    published = [container.events.publish(sid, "message.received", {"text": f"hi {i}"}) for i in range(5)]
    page = _events(api, sid, headers, after=first["cursor"], limit=3)
    assert [e["id"] for e in page["events"]] == [p["id"] for p in published[:3]]
    assert page["has_more"] is True
    rest = _events(api, sid, headers, after=page["cursor"], limit=3)
    assert [e["id"] for e in rest["events"]] == [p["id"] for p in published[3:]]
    assert rest["has_more"] is False
    assert rest["events"][-1] == published[-1]  # the envelope the webhook receives

    newest = _events(api, sid, headers, limit=2)  # without a cursor: the newest `limit`
    assert [e["id"] for e in newest["events"]] == [p["id"] for p in published[3:]]
    assert _events(api, sid, headers, after=newest["cursor"])["events"] == []


def test_a_new_session_reusing_a_session_id_sees_none_of_the_old_ones_events(api, container, admin_headers,
                                                                               make_session):
    old = make_session()
    sid = old["session_id"]
    container.events.publish(sid, "message.received", {"text": "the old tenant's secret"})
    old_cursor = _events(api, sid, admin_headers)["cursor"]
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    new = api.post("/sessions", headers=admin_headers, body=json.dumps({"name": "new", "session_id": sid})).json_body

    for headers in (admin_headers, session_headers(new)):
        seen = _events(api, sid, headers)["events"]
        assert [e["event"] for e in seen] == ["session.created"]
        assert seen[0]["metadata"]["session_uid"] == new["id"]
        # the old one's cursor is from another session: read from the new one's beginning
        assert [e["event"] for e in _events(api, sid, headers, after=old_cursor)["events"]] == ["session.created"]
    assert "secret" not in json.dumps(_events(api, sid, admin_headers))


def test_only_the_admin_or_that_session_may_read(api, make_session):
    one, other = make_session(), make_session()
    denied = api.get(f"/sessions/{one['session_id']}/events", headers=session_headers(other))
    assert denied.status_code in (403, 404)
    assert api.get(f"/sessions/{one['session_id']}/events").status_code == 401


def test_bad_cursor_and_limit_are_422_and_an_unknown_session_404(api, admin_headers, make_session):
    sid = make_session()["session_id"]
    for query in ("after=not-a-cursor", "after=" + "A" * 40, "limit=0", "limit=201"):
        answer = api.get(f"/sessions/{sid}/events?{query}", headers=admin_headers)
        assert answer.status_code == 422, (query, answer.body)
        assert answer.json_body["code"] == "validation_failed"
    missing = api.get(f"/sessions/nope-{uuid.uuid4().hex[:6]}/events", headers=admin_headers)
    assert missing.status_code == 404 and missing.json_body["code"] == "session_not_found"


def test_events_older_than_the_retention_are_not_read_and_are_pruned(api, container, db, make_session):
    created = make_session()
    sid, headers = created["session_id"], session_headers(created)
    fresh = container.events.publish(sid, "message.received", {"text": "fresh"})
    with db.connection() as conn:
        conn.execute("UPDATE event_outbox SET created_at = now() - interval '8 days', sent_at = now() - interval '8 days' "
                     "WHERE session_uid = %s AND id <> %s", (created["id"], fresh["id"]))
    assert [e["id"] for e in _events(api, sid, headers)["events"]] == [fresh["id"]]
    purged = container.retention.run().deleted["event_outbox"]
    with db.connection() as conn:
        left = conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_uid = %s",
                            (created["id"],)).fetchone()["n"]
    assert purged >= 1 and left == 1


def test_the_query_uses_the_session_sequence_index(container, db, make_session):
    created = make_session()
    with db.connection() as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN SELECT envelope FROM event_outbox WHERE session_uid = %s "
            "AND (envelope #>> '{metadata,sequence}')::bigint > 0 ORDER BY (envelope #>> '{metadata,sequence}')::bigint "
            "LIMIT 10", (created["id"],)).fetchall())
    assert "idx_event_outbox_session_seq" in plan


def test_sent_events_past_the_retention_are_pruned(container, db, make_session):
    """The hourly retention job (app.py prune_retention, chalicelib/services/retention.py) applies
    EVENT_RETENTION to the outbox: sent events older than it go, unsent ones stay."""
    created = make_session()
    old = container.events.publish(created["session_id"], "message.received", {"text": "old"})
    unsent = container.events.publish(created["session_id"], "message.received", {"text": "not sent yet"})
    with db.connection() as conn:
        conn.execute("UPDATE event_outbox SET created_at = now() - interval '8 days', "
                     "sent_at = CASE WHEN id = %s THEN NULL ELSE now() - interval '8 days' END "
                     "WHERE id = ANY(%s::uuid[])", (unsent["id"], [old["id"], unsent["id"]]))
    assert container.settings.retention["event_outbox"] == container.settings.event_retention
    container.retention.run()
    with db.connection() as conn:
        left = {str(r["id"]) for r in conn.execute("SELECT id FROM event_outbox WHERE id = ANY(%s::uuid[])",
                                                   ([old["id"], unsent["id"]],)).fetchall()}
    assert left == {unsent["id"]}  # an unsent event stays until SQS takes it
