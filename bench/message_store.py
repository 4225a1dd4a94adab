"""The message store: read API latency on a chat of 100,000 messages, and the runner's
inbound write throughput with the store on and off, in one run.

    .venv/bin/python -m bench.message_store [--requests 500] [--messages 100000] [--writes 3000]

Read API (in-process, chalice.test.Client, the session's key): p50/p99 of
`GET /sessions/{id}/chats/{chat}/messages?limit=50` for the first page and for a deep page
(the cursor of the row 90% down the chat), and of `GET /sessions/{id}/chats`. The table also
holds as many messages of other chats and another session, so the chat is not the table.
Baselines, same run: a bare Chalice route, `SELECT 1` through the pool, and `GET /sessions/{id}`
with the same key (authentication and one row: the ratios are to it). The EXPLAIN
(ANALYZE) of both pages is printed.

Inbound throughput: what the runner does for each received message, `SessionStore.apply`
of `message_change("message.received", ...)`: one transaction writing the session's
counters, the event in the outbox and (store on) the message, its chat and its author.
Measured with MESSAGE_STORE=full, metadata and off in alternating blocks (the same machine
noise falls on each), on 1 session and on 8 sessions in parallel threads (the runner's
actors are one thread per session). Messages/s stored + event written. The SQS hand-off
after commit is the same with the store on or off and is not included.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_latency import report, timed  # noqa: E402
from devstack import PROJECT_ROOT  # noqa: E402
from devstack.stack import LocalStackEnvironment  # noqa: E402

PEER = "5511912345678@s.whatsapp.net"


def seed(db, uid: str, other_uid: str, count: int) -> None:
    """`count` messages in the chat, as many again spread over 1,000 other chats and another session."""
    insert = """
        INSERT INTO messages (session_uid, message_id, chat_jid, sender_jid, sender_phone, from_me, type, text,
                              sent_at, status)
        SELECT %(uid)s, md5(%(salt)s || n::text), {chat}, %(peer)s, '5511912345678', n %% 2 = 0,
               CASE WHEN n %% 7 = 0 THEN 'image' ELSE 'text' END, 'message number ' || n,
               timestamptz '2026-01-01' + make_interval(secs => n * 60), 'received'
          FROM generate_series(1, %(count)s) AS n
        """
    one_chat, many_chats = "%(peer)s", "'55119' || lpad((n %% 1000)::text, 8, '0') || '@s.whatsapp.net'"
    with db.connection() as conn:
        for target, chat, rows in ((uid, one_chat, count), (uid, many_chats, count // 2),
                                   (other_uid, one_chat, count // 2)):
            conn.execute(insert.format(chat=chat), {"uid": target, "salt": f"{target}{chat}", "peer": PEER,
                                                    "count": rows})
        conn.execute(
            """
            INSERT INTO chats (session_uid, chat_jid, is_group, last_message_id, last_message_at, activity_at)
            SELECT session_uid, chat_jid, false, max(message_id), max(sent_at), max(sent_at)
              FROM messages GROUP BY session_uid, chat_jid
            ON CONFLICT DO NOTHING
            """)
        conn.execute("ANALYZE messages")
        conn.execute("ANALYZE chats")


def explain(db, sql: str, params: dict) -> str:
    with db.connection() as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql, params).fetchall()
    return "\n".join("    " + row["QUERY PLAN"] for row in rows)


def read_api(client, container, created, args) -> None:
    from chalice import Chalice
    from chalice.test import Client

    from chalicelib.repositories.store_reads import StoreReadRepository
    from chalicelib.services.store import encode_cursor

    db = container.db
    uid, sid = created["id"], created["session_id"]
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    bare = Chalice(app_name="bare")

    @bare.route("/ping")
    def ping():
        return {"ok": True}

    with db.connection() as conn:
        deep = conn.execute("SELECT sent_at, message_id FROM messages WHERE session_uid = %s AND chat_jid = %s "
                            "ORDER BY sent_at DESC, message_id DESC OFFSET %s LIMIT 1",
                            (uid, PEER, int(args.messages * 0.9))).fetchone()
    cursor = encode_cursor(f"messages:{PEER}", uid, [deep["sent_at"].isoformat(), deep["message_id"]])
    base = f"/sessions/{sid}/chats/{quote(PEER, safe='')}/messages?limit=50"
    first_page = lambda: client.http.get(base, headers=headers)  # noqa: E731
    deep_page = lambda: client.http.get(f"{base}&cursor={cursor}", headers=headers)  # noqa: E731
    chats = lambda: client.http.get(f"/sessions/{sid}/chats?limit=50", headers=headers)  # noqa: E731
    assert len(first_page().json_body["messages"]) == 50 and len(deep_page().json_body["messages"]) == 50

    n = args.requests
    print(f"# read API, in-process, {n} requests each; chat of {args.messages} messages "
          f"({args.messages * 2} in the table)")
    with Client(bare) as bare_client:
        report("bare Chalice route (baseline)", timed(n, lambda: bare_client.http.get("/ping")))

    def select_one():
        with db.connection() as conn:
            conn.execute("SELECT 1")

    report("SELECT 1 through the pool (baseline)", timed(n, select_one))
    session_route = report("GET /sessions/{id}, same key (baseline: auth + one row)",
                           timed(n, lambda: client.http.get(f"/sessions/{sid}", headers=headers)))
    report("GET .../chats/{chat}/messages first page (50)", timed(n, first_page), session_route)
    report("GET .../chats/{chat}/messages deep page (90%)", timed(n, deep_page), session_route)
    report("GET .../chats (50 of 1,001 chats)", timed(n, chats), session_route)
    # the same pages without HTTP, auth and validation: StoreService (cursor decode + the query + views)
    from types import SimpleNamespace

    service = container.store
    query = SimpleNamespace(limit=50, cursor=None, type=None, before=None, after=None)
    report("  StoreService.messages first page (no HTTP)", timed(n, lambda: service.messages(sid, PEER, query)))
    deep_query = SimpleNamespace(**{**vars(query), "cursor": cursor})
    report("  StoreService.messages deep page (no HTTP)", timed(n, lambda: service.messages(sid, PEER, deep_query)))
    params = {"uid": uid, "chat": PEER, "limit": 51, "type": None, "before": None, "since": None}
    print("  EXPLAIN first page:")
    print(explain(db, StoreReadRepository.messages_query(type=None, before=None, since=None, after=None), params))
    print("  EXPLAIN deep page:")
    print(explain(db, StoreReadRepository.messages_query(type=None, before=None, since=None, after=deep),
                  {**params, "at": deep["sent_at"], "id": deep["message_id"]}))


def throughput(container, make_session, args) -> None:
    from chalicelib.repositories.session_store import SessionStore
    from runner_container.machine import message_change

    sessions = [make_session() for _ in range(8)]
    stores = {mode: SessionStore(container.db, container.events, mode) for mode in ("full", "metadata", "off")}
    counter = iter(range(10 ** 9))

    def write(store, created, count):
        for _ in range(count):
            n = next(counter)
            peer = f"55119{n % 500:08d}"
            data = {"message_id": f"3EB0{n:016X}", "chat": {"jid": f"{peer}@s.whatsapp.net", "phone": peer},
                    "from": {"jid": f"{peer}@s.whatsapp.net", "phone": peer}, "is_group": False, "from_me": False,
                    "push_name": "Bench", "timestamp": int(time.time()), "quoted_message_id": None,
                    "type": "text", "text": f"inbound message number {n} with some words in it"}
            store.apply(created["session_id"], message_change("message.received", data), uid=created["id"])

    def block(mode, parallel, count):
        threads = [threading.Thread(target=write, args=(stores[mode], sessions[i], count // parallel))
                   for i in range(parallel)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return (count // parallel) * parallel / (time.perf_counter() - started)

    print(f"# runner inbound write path (SessionStore.apply: counters + event outbox + store), "
          f"{args.writes} messages per mode and concurrency, alternating blocks of {args.writes // 5}")
    write(stores["full"], sessions[0], 200)  # warm-up
    for parallel in (1, 8):
        rates: dict[str, list[float]] = {"full": [], "metadata": [], "off": []}
        for _ in range(5):
            for mode in rates:
                rates[mode].append(block(mode, parallel, args.writes // 5))
        off = statistics.median(rates["off"])
        for mode, values in rates.items():
            rate = statistics.median(values)
            print(f"  {parallel} session(s), MESSAGE_STORE={mode:<8} {rate:8.0f} messages/s"
                  + ("  (baseline)" if mode == "off" else f"  ({rate / off:.2f} of off)"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=3000)
    args = parser.parse_args()
    env = {**os.environ, "DATA_DIR": str(PROJECT_ROOT / ".zemeow" / "bench"), "QUEUE_PREFIX": f"zms{os.getpid()}",
           "ADMIN_API_KEY": "bench-admin-key-0123456789abcdef", "ENCRYPTION_KEY": "bench-encryption-key",
           "LOG_LEVEL": "WARNING", "API_RATE_LIMIT": "off", "DB_POOL_MAX_SIZE": "20"}
    stack = LocalStackEnvironment(env, database_name=f"zemeow_bench_store_{os.getpid()}", fresh_database=True,
                                  log=lambda m: None)
    try:
        stack.start_database()
        stack.migrate()
        stack.start_localstack()
        stack.deploy_messaging()
        os.environ.update({k: v for k, v in stack.env.items() if k.startswith("AWS_") or k in (
            "DATABASE_URL", "QUEUE_PREFIX", "ADMIN_API_KEY", "ENCRYPTION_KEY", "LOG_LEVEL", "DATA_DIR",
            "API_RATE_LIMIT", "DB_POOL_MAX_SIZE")})
        from chalice.test import Client

        import app as app_module
        from chalicelib.bootstrap import get_container

        admin = {"Authorization": f"Bearer {env['ADMIN_API_KEY']}", "Content-Type": "application/json"}
        with Client(app_module.app, stage_name="local") as client:
            def make_session():
                body = json.dumps({"name": "bench", "session_id": f"b-{uuid.uuid4().hex[:10]}"})
                return client.http.post("/sessions", headers=admin, body=body).json_body

            container = get_container()
            created, other = make_session(), make_session()
            started = time.perf_counter()
            seed(container.db, created["id"], other["id"], args.messages)
            print(f"# seeded {args.messages * 2} messages in {time.perf_counter() - started:.1f}s")
            read_api(client, container, created, args)
            throughput(container, make_session, args)
    finally:
        stack.stop(delete_queues=True, drop_database=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
