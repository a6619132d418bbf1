"""The request bucket shared through PostgreSQL: processes of one portal draw from one budget."""

from __future__ import annotations

import asyncio

from b24sync.bitrix.limiter import BucketRule
from b24sync.store.rate_bucket import SharedBucket

# No drain to speak of (one request per 1000 s), so what is counted is what was taken.
RULE = BucketRule(rate=0.001, burst=12, headroom=2)  # ceiling: 10 requests


async def blocked(bucket: SharedBucket) -> bool:
    """Whether the next request has to wait (it would wait far longer than this check)."""
    try:
        await asyncio.wait_for(bucket.acquire(), timeout=0.3)
    except TimeoutError:
        return True
    return False


def test_the_rule_admits_up_to_the_ceiling_and_says_how_long_to_wait() -> None:
    rule = BucketRule(rate=2.0, burst=50, headroom=2)
    assert rule.admit(0.0, 0.0) == (1.0, 0.0)
    assert rule.admit(47.0, 0.0) == (48.0, 0.0)
    assert rule.admit(48.0, 0.0) == (48.0, 0.5)  # one slot drains in 1/rate s
    assert rule.admit(48.0, 1.0) == (47.0, 0.0)  # two drained, one taken


async def test_two_processes_share_one_budget(database_url: str) -> None:
    first = SharedBucket(database_url, "https://portal.example", RULE)
    second = SharedBucket(database_url, "https://portal.example", RULE)
    other_portal = SharedBucket(database_url, "https://other.example", RULE)
    try:
        for _ in range(6):
            await first.acquire()
        for _ in range(4):
            await second.acquire()
        assert first.waited_seconds == second.waited_seconds == 0
        assert await blocked(second) and await blocked(first)  # 10 taken between them
        assert not await blocked(other_portal)  # another portal has its own budget
    finally:
        for bucket in (first, second, other_portal):
            await bucket.close()


async def test_an_overflow_reported_by_one_process_holds_back_the_others(
    database_url: str,
) -> None:
    first = SharedBucket(database_url, "https://portal.example", RULE)
    second = SharedBucket(database_url, "https://portal.example", RULE)
    try:
        await first.acquire()
        first.penalise()  # the portal answered QUERY_LIMIT_EXCEEDED
        assert await blocked(first)
        assert await blocked(second)
    finally:
        await first.close()
        await second.close()


async def test_concurrent_requests_of_one_process_each_take_a_slot(database_url: str) -> None:
    bucket = SharedBucket(database_url, "https://fast.example", RULE)
    try:
        await asyncio.gather(*(bucket.acquire() for _ in range(10)))
        assert bucket.waited_seconds == 0
        assert await blocked(bucket)
    finally:
        await bucket.close()
