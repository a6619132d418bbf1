"""A client-side mirror of the portal's leaky bucket (limits.md), so we never hit a 503."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

STANDARD = (2.0, 50)
ENTERPRISE = (5.0, 250)


@dataclass
class LeakyBucket:
    """Each request adds 1; the level drains by ``rate``/s; we wait rather than exceed ``burst``.

    ``headroom`` keeps a few slots free for other clients of the same portal.
    """

    rate: float = STANDARD[0]
    burst: int = STANDARD[1]
    headroom: int = 2
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)
    waited_seconds: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
                self.stamp = now
                ceiling = max(1, self.burst - self.headroom)
                if self.level + 1 <= ceiling:
                    self.level += 1
                    return
                pause = (self.level + 1 - ceiling) / self.rate
                self.waited_seconds += pause
                await asyncio.sleep(pause)

    def penalise(self) -> None:
        """The portal said QUERY_LIMIT_EXCEEDED: its bucket is fuller than ours thinks."""
        self.level = float(self.burst)
        self.stamp = time.monotonic()
