"""The PostgreSQL token bucket behind the contacts-check limit: refill arithmetic, refusals
that cost nothing, and concurrent callers that never spend the same tokens twice."""
from __future__ import annotations

import threading
import uuid

import pytest

from chalicelib.repositories.rate_limits import RateLimitRepository, charge_from


@pytest.fixture
def limits(db):
    return RateLimitRepository(db)


def _bucket() -> str:
    return f"test:{uuid.uuid4().hex[:12]}"


def _age(db, bucket: str, seconds: float) -> None:
    """Pretend the last charge happened `seconds` earlier (the refill is lazy, from updated_at)."""
    with db.connection() as conn:
        conn.execute("UPDATE rate_limits SET updated_at = updated_at - make_interval(secs => %s) WHERE bucket = %s",
                     (seconds, bucket))


def test_a_new_bucket_starts_full_and_charges_in_units(limits):
    bucket = _bucket()
    first = limits.take(bucket, 30, capacity=100, period=100.0)
    assert first.granted and first.remaining == 70 and first.retry_after == 0
    assert first.reset_seconds == 30  # 1 token a second back to 100
    second = limits.take(bucket, 70, capacity=100, period=100.0)
    assert second.granted and second.remaining == 0


def test_a_refused_charge_costs_nothing_and_says_when_to_retry(limits):
    bucket = _bucket()
    assert limits.take(bucket, 95, capacity=100, period=100.0).granted
    refused = limits.take(bucket, 10, capacity=100, period=100.0)
    assert not refused.granted
    assert refused.remaining == 5
    assert 5 <= refused.retry_after <= 6  # 5 tokens missing at 1/s (a moment may have refilled a little)
    small = limits.take(bucket, 5, capacity=100, period=100.0)
    assert small.granted and small.remaining == 0  # the refusal spent nothing


def test_tokens_refill_with_time_up_to_the_capacity(limits, db):
    bucket = _bucket()
    assert limits.take(bucket, 100, capacity=100, period=3600.0).granted  # drained
    _age(db, bucket, 360)  # a tenth of the period: 10 tokens back
    charge = limits.take(bucket, 10, capacity=100, period=3600.0)
    assert charge.granted and charge.remaining == 0
    refused = limits.take(bucket, 1, capacity=100, period=3600.0)
    assert not refused.granted and refused.retry_after in (35, 36)  # 36 s per token
    _age(db, bucket, 10 * 3600)  # long idle: full, never more than the capacity
    assert limits.take(bucket, 0, capacity=100, period=3600.0).remaining == 100


def test_concurrent_charges_never_overspend(limits, db):
    bucket = _bucket()
    limits.take(bucket, 0, capacity=20, period=3600.0)  # created full: 20 tokens
    granted: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(5):
            ok = limits.take(bucket, 1, capacity=20, period=3600.0).granted
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 40 attempts on 20 tokens (a few ms of refill at 1 per 180 s cannot add a whole one)
    assert granted.count(True) == 20 and len(granted) == 40
    with db.connection() as conn:
        tokens = conn.execute("SELECT tokens FROM rate_limits WHERE bucket = %s", (bucket,)).fetchone()["tokens"]
    assert 0 <= tokens < 1


def test_retry_arithmetic_rounds_up_to_whole_seconds():
    assert charge_from(0.0, False, 1, capacity=200, period=3600.0).retry_after == 18  # 18 s per number
    assert charge_from(17.5, False, 20, capacity=200, period=3600.0).retry_after == 45  # 2.5 * 18
    assert charge_from(3.0, False, 300, capacity=200, period=3600.0).retry_after == 3600  # never fits: a period
    assert charge_from(199.9999999, True, 1, capacity=200, period=3600.0).remaining == 200
