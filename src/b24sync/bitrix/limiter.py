"""Client-side mirrors of the portal's leaky bucket and operating-time limit (limits.md), so
that we wait instead of being refused."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_COMMAND = 60.0  # seconds: one request may run no longer on a cloud portal


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
class MethodTime:
    """What the portal last said about one method's operating time, and what we have sent."""

    operating: float = 0.0  # accumulated seconds in the window, as last reported
    reported_at: float = 0.0  # the portal's `finish` of that report
    reset_at: float = 0.0  # when a portion of it is released (unix time)
    per_command: float = 0.0  # the largest cost of one command seen so far
    in_flight: int = 0  # commands sent and not answered yet

    def fits(self, commands: int, limit: float, now: float) -> bool:
        """Whether a call of ``commands`` may go now and still leave room for one more like it:
        a call sent on a stale figure after a release (below) then stays inside the limit."""
        if not self.in_flight and (self.reset_at <= now or not self.operating):
            return True  # nothing sent, and the figure is stale or empty: ask, and learn
        spent = self.operating + (self.in_flight + 2 * commands) * self.per_command
        return spent <= limit


Spend = dict[str, int]  # method -> how many of its commands one HTTP call runs


@dataclass
class OperatingPacer:
    """Paces by the `operating` time answers report (limits.md, resource limit), per method.

    The portal blocks a method whose execution time, summed over a sliding window, passes its
    budget (480 s per 10 minutes on the cloud). Before a call is sent, the cost of its commands
    (the largest a command has cost so far) is added to the method's last reported `operating`
    beside the commands still in flight; a call that does not fit waits for one in flight to
    answer (the figure is then newer) or, with nothing in flight, until `operating_reset_at`,
    when part of the budget is released (the next answer says how much). ``headroom`` of the budget is left for other clients
    and for estimates that came out low, so a healthy portal never answers OPERATION_TIME_LIMIT.
    """

    budget: float = 480.0
    headroom: float = 0.05
    max_wait: float = 660.0
    waited_seconds: float = 0.0
    methods: dict[str, MethodTime] = field(default_factory=dict)
    _answered: asyncio.Event | None = None  # set (and replaced) whenever a call is settled

    def _method(self, name: str) -> MethodTime:
        return self.methods.setdefault(name, MethodTime())

    def _fits(self, spend: Spend) -> bool:
        limit, now = self.budget * (1 - self.headroom), time.time()
        return all(self._method(name).fits(n, limit, now) for name, n in spend.items())

    async def reserve(self, spend: Spend) -> None:
        """Wait until ``spend`` fits its methods' budgets, then count it in flight until
        :meth:`settle`."""
        while not self._fits(spend):
            started = time.monotonic()
            if any(self._method(name).in_flight for name in spend):
                if self._answered is None:
                    self._answered = asyncio.Event()
                await self._answered.wait()
            else:
                now = time.time()
                rest = max(self._method(name).reset_at - now for name in spend)
                await asyncio.sleep(min(max(rest, 0.05), self.max_wait))
            self.waited_seconds += time.monotonic() - started
        for name, commands in spend.items():
            self._method(name).in_flight += commands

    def settle(self, spend: Spend, times: list[tuple[str, dict[str, Any]]]) -> None:
        """The call holding ``spend`` is over; ``times`` are its commands' `time` blocks."""
        for name, commands in spend.items():
            method = self._method(name)
            method.in_flight = max(0, method.in_flight - commands)
        self.observe(times)
        if self._answered is not None:
            self._answered.set()
            self._answered = None

    def observe(self, times: list[tuple[str, dict[str, Any]]]) -> None:
        """Take in the `time` blocks of answered commands (method, block), in running order."""
        previous: dict[str, float] = {}
        for name, block in times:
            method = self._method(name)
            operating = _number(block.get("operating"))
            # a command's own cost: what it reports as processing, or how far it moved the sum
            moved = operating - previous.get(name, operating)
            previous[name] = operating
            method.per_command = max(
                method.per_command, _number(block.get("processing")), min(moved, MAX_COMMAND)
            )
            finished = _number(block.get("finish"))
            if finished >= method.reported_at:  # answers of parallel calls come in any order
                method.operating = operating
                method.reported_at = finished
                # whole seconds, rounded down: the release may come up to a second later
                method.reset_at = _number(block.get("operating_reset_at")) + 1.0

    def blocked(self, name: str, reset_at: float) -> None:
        """The portal said OPERATION_TIME_LIMIT for a method: its budget is spent until
        ``reset_at`` (or a short while)."""
        method = self._method(name)
        method.operating = self.budget
        method.reported_at = time.time()
        method.reset_at = reset_at if reset_at > time.time() else time.time() + 1.0


def _number(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
