"""Client-side mirrors of the portal's leaky bucket and operating-time limit (limits.md), so
that we wait instead of being refused."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class BucketRule:
    """The leaky-bucket arithmetic, kept in one place for the in-process and shared buckets.

    Each request adds 1; the level drains by ``rate``/s; we wait rather than exceed ``burst``.
    ``headroom`` keeps a few slots free for other clients of the same portal. The defaults are
    most plans' 2/s and 50; Enterprise portals allow 5/s and 250 (BITRIX_RATE, BITRIX_BURST).
    """

    rate: float = 2.0
    burst: int = 50
    headroom: int = 2

    def admit(self, level: float, elapsed: float) -> tuple[float, float]:
        """From the level ``elapsed`` seconds ago: (the new level, 0.0) when a request may go
        now, else (the drained level, seconds to wait before asking again)."""
        drained = max(0.0, level - elapsed * self.rate)
        ceiling = max(1, self.burst - self.headroom)
        if drained + 1 <= ceiling:
            return drained + 1, 0.0
        return drained, (drained + 1 - ceiling) / self.rate


class RequestLimiter(Protocol):
    """What the client needs of a limiter: a slot per HTTP call, and word of an overflow."""

    waited_seconds: float

    async def acquire(self) -> None: ...

    def penalise(self) -> None:
        """The portal said QUERY_LIMIT_EXCEEDED: its bucket is fuller than ours thinks."""
        ...


@dataclass
class LeakyBucket:
    """A client-side mirror of the portal's bucket, for one process (see :class:`BucketRule`).

    Processes sharing a portal use :class:`b24sync.store.rate_bucket.SharedBucket` instead.
    """

    rule: BucketRule = field(default_factory=BucketRule)
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    waited_seconds: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level, pause = self.rule.admit(self.level, now - self.stamp)
                self.stamp = now
                if pause == 0:
                    return
                self.waited_seconds += pause
                await asyncio.sleep(pause)

    def penalise(self) -> None:
        self.level = float(self.rule.burst)
        self.stamp = time.monotonic()


@dataclass
class OperatingPacer:
    """Paces by the `operating` time responses report (limits.md, resource limit).

    A method whose accumulated execution time passes ``soft_fraction`` of the portal's budget
    (480 s per 10 minutes on the cloud) is given a rest until its ``operating_reset_at``, so that
    the portal never has to block it with OPERATION_TIME_LIMIT.
    """

    budget: float = 480.0
    soft_fraction: float = 0.8
    max_wait: float = 660.0
    pause_until: float = 0.0
    waited_seconds: float = 0.0

    def observe(self, time_block: dict[str, object]) -> None:
        operating = _number(time_block.get("operating"))
        reset_at = _number(time_block.get("operating_reset_at"))
        if operating >= self.budget * self.soft_fraction and reset_at > time.time():
            self.pause_until = max(self.pause_until, reset_at)

    def blocked(self, reset_at: float) -> None:
        """The portal said OPERATION_TIME_LIMIT: rest until ``reset_at`` (or a short while)."""
        self.pause_until = max(
            self.pause_until, reset_at if reset_at > time.time() else time.time() + 1.0
        )

    async def wait(self) -> None:
        pause = min(self.pause_until - time.time(), self.max_wait)
        if pause > 0:
            self.waited_seconds += pause
            await asyncio.sleep(pause)


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
