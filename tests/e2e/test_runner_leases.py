"""Lease arithmetic and the shard function, against the real PostgreSQL."""
from __future__ import annotations

import uuid

import pytest

from chalicelib.queues import shard_for
from runner_container.leases import LeaseManager
from chalicelib.repositories.shards import shard_sql


@pytest.mark.parametrize("shards", [1, 2, 4, 8])
def test_the_sql_shard_function_agrees_with_the_python_one(db, shards):
    ids = [f"s-{uuid.uuid4().hex[:12]}" for _ in range(200)] + ["abc", "ses_ffffffffffff", "t-ção-ü"]
    with db.connection() as conn:
        rows = conn.execute(f"SELECT id, {shard_sql('id', shards)} AS shard FROM unnest(%s::text[]) AS id",
                            (ids,)).fetchall()
    assert {r["id"]: r["shard"] for r in rows} == {i: shard_for(i, shards) for i in ids}


def test_leases_balance_renew_and_expire(db, clean_runners):
    with db.connection() as conn:
        conn.execute("DELETE FROM shard_leases")
        for runner in ("lease-a", "lease-b"):
            conn.execute("INSERT INTO runners (id, hostname, pid, version, driver) VALUES (%s, 'h', 1, 'v', 'x')",
                         (runner,))
    a = LeaseManager(db, "lease-a", shards=4, ttl=30)
    b = LeaseManager(db, "lease-b", shards=4, ttl=30)
    # two live runners: fair share 2 each, whoever ticks first
    assert a.tick() == ({0, 1}, set())
    assert b.tick() == ({2, 3}, set())
    assert a.tick() == (set(), set()) and a.owned == {0, 1}
    # b stops heartbeating: a's fair share becomes 4, but b's leases only go once expired
    with db.connection() as conn:
        conn.execute("UPDATE runners SET heartbeat_at = now() - interval '1 hour' WHERE id = 'lease-b'")
    assert a.tick() == (set(), set())
    with db.connection() as conn:
        conn.execute("UPDATE shard_leases SET expires_at = now() - interval '1 second' WHERE runner_id = 'lease-b'")
    assert a.tick() == ({2, 3}, set())
    # b comes back: it sees it lost everything; a gives two back on its next tick
    with db.connection() as conn:
        conn.execute("UPDATE runners SET heartbeat_at = now() WHERE id = 'lease-b'")
    assert b.tick() == (set(), {2, 3})
    gained, lost = a.tick()
    assert gained == set() and lost == {2, 3}
    assert b.tick() == ({2, 3}, set())
    # a graceful release frees the shards at once
    a.release()
    with db.connection() as conn:
        free = conn.execute("SELECT shard FROM shard_leases WHERE runner_id IS NULL ORDER BY shard").fetchall()
    assert [r["shard"] for r in free] == [0, 1]
