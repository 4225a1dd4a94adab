"""`make run` after LocalStack came back without its queues (bench/faults.py scenario 4):
`LocalStackEnvironment.redeploy_if_missing` deploys the messaging stack again and marks the
events the old queues held (handed over, never taken by the dispatcher) unsent, so the
sweeper sends them again; events already taken are left alone.

The lost queues are played by deleting this test's own messaging stack (its own queue
prefix) on the suite's LocalStack: a restarted LocalStack has lost its stacks the same way.
"""
from __future__ import annotations

import os
import uuid

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.aws_clients import make_client
from devstack.messaging_stack import delete_stack
from devstack.stack import LocalStackEnvironment


def _event(conn, sent: bool) -> str:
    event_id = str(uuid.uuid4())
    envelope = {"id": event_id, "session_id": "gone-queues", "event": "message.received", "data": {},
                "metadata": {"sequence": 1}}
    conn.execute("INSERT INTO event_outbox (id, session_id, event, envelope, sent_at) VALUES "
                 "(%s, 'gone-queues', 'message.received', %s, CASE WHEN %s THEN now() END)",
                 (event_id, Jsonb(envelope), sent))
    return event_id


def test_redeploy_after_the_queues_vanished_resends_what_they_held(stack, tmp_path):
    env = {**stack.env, "QUEUE_PREFIX": f"zg{os.getpid()}{uuid.uuid4().hex[:4]}", "DATA_DIR": str(tmp_path)}
    local = LocalStackEnvironment(env, database_name="unused", log=lambda m: None)
    local.start_localstack()
    local.deploy_messaging()
    sqs = make_client("sqs", local.settings)
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        held, taken, unsent_before = _event(conn, sent=True), _event(conn, sent=True), _event(conn, sent=False)
        conn.execute("INSERT INTO webhook_deliveries (event_id, session_id, session_uid, event, url, payload, status) VALUES "
                     "(%s, 'gone-queues', gen_random_uuid(), 'message.received', 'http://127.0.0.1:9/x', '{}', 'succeeded')", (taken,))
    try:
        assert local.redeploy_if_missing() is False  # the queues are there: nothing to do
        delete_stack(make_client("cloudformation", local.settings), local.settings.messaging_stack_name)
        assert "QueueUrls" not in sqs.list_queues(QueueNamePrefix=local.settings.events_queue_name)

        assert local.redeploy_if_missing() is True
        assert sqs.get_queue_url(QueueName=local.settings.events_queue_name)["QueueUrl"]
        with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
            sent = dict(conn.execute("SELECT id::text, sent_at IS NOT NULL FROM event_outbox WHERE id = ANY(%s::uuid[])",
                                     ([held, taken, unsent_before],)).fetchall())
        assert sent == {held: False, taken: True, unsent_before: False}  # held: the sweeper sends it again
        assert local.redeploy_if_missing() is False
    finally:
        local.delete_messaging()
        with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("DELETE FROM webhook_deliveries WHERE session_id = 'gone-queues'")
            conn.execute("DELETE FROM event_outbox WHERE session_id = 'gone-queues'")
