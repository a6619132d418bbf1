"""Request-rate and resource limits of a portal, a cost model, faults and call statistics.

Docs: limits.md (leaky bucket X/Y, batch counts once, operating time 480 s per 10 minutes per
method), settings/performance/huge-data.md (counting cost vs start=-1).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field


@dataclass
class LeakyBucket:
    """Each request adds 1; the counter drains by ``rate`` per second; above ``burst`` -> 503."""

    rate: float = 2.0
    burst: int = 50
    enabled: bool = False
    level: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def admit(self) -> bool:
        if not self.enabled:
            return True
        now = time.monotonic()
        self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        self.stamp = now
        if self.level + 1 > self.burst:
            return False
        self.level += 1
        return True


@dataclass
class CostModel:
    """Simulated server time per command, in seconds (off: everything costs nothing).

    A page costs ``base + per_record * returned``; a counted list (start >= 0) also pays
    ``count_per_record * (matching + offset)``: the query the portal runs for `total`.
    """

    enabled: bool = False
    base: float = 0.002
    per_record: float = 0.0004
    count_per_record: float = 0.00002

    def command_seconds(self, *, returned: int, counted_rows: int | None) -> float:
        if not self.enabled:
            return 0.0
        cost = self.base + self.per_record * returned
        if counted_rows is not None:
            cost += self.count_per_record * counted_rows
        return cost


@dataclass
class OperatingBudget:
    """Per method: accumulated execution time in a sliding window; over budget -> blocked."""

    window: float = 600.0
    budget: float = 480.0
    enabled: bool = True
    spent: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    def _trim(self, method: str, now: float) -> deque[tuple[float, float]]:
        entries = self.spent.setdefault(method, deque())
        while entries and entries[0][0] <= now - self.window:
            entries.popleft()
        return entries

    def operating(self, method: str) -> float:
        return sum(cost for _, cost in self._trim(method, time.time()))

    def blocked_until(self, method: str) -> float | None:
        """The unix time the method is unblocked at, or None when it may run."""
        if not self.enabled:
            return None
        now = time.time()
        entries = self._trim(method, now)
        total = sum(cost for _, cost in entries)
        if total <= self.budget:
            return None
        # The block lifts when enough of the oldest costs have left the window.
        excess = total - self.budget
        for stamp, cost in entries:
            excess -= cost
            if excess < 0:
                return stamp + self.window
        return now

    def reset_at(self, method: str) -> float:
        entries = self._trim(method, time.time())
        return (entries[0][0] + self.window) if entries else time.time()

    def charge(self, method: str, seconds: float) -> None:
        if seconds > 0:
            self._trim(method, time.time()).append((time.time(), seconds))


@dataclass
class Faults:
    """Injected trouble: shares of 503/500 responses and dropped connections, extra latency.

    ``expired_token``: the share of calls answered 401 ``expired_token``, as a portal does when
    the access token behind a call has lapsed (system-errors.md). ``missing_id``: the share of
    list pages on which one record comes without its ``ID`` (a damaged answer; the real portal
    is not known to do this, it probes how a client copes with one bad record).
    """

    error_503: float = 0.0
    error_500: float = 0.0
    drop: float = 0.0
    expired_token: float = 0.0
    missing_id: float = 0.0
    slow: float = 0.0
    slow_ms: float = 2000.0
    latency_ms: float = 0.0
    latency_per_record_ms: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def roll(self, share: float) -> bool:
        return share > 0 and self.rng.random() < share


@dataclass
class Stats:
    http_calls: int = 0
    commands: int = 0
    rate_limited: int = 0
    operation_limited: int = 0
    faults_injected: int = 0
    records_returned: int = 0
    bytes_sent: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    ids_withheld: list[int] = field(default_factory=list)  # the `missing_id` fault's records

    def as_dict(self) -> dict[str, object]:
        return {
            "http_calls": self.http_calls,
            "commands": self.commands,
            "rate_limited": self.rate_limited,
            "operation_limited": self.operation_limited,
            "faults_injected": self.faults_injected,
            "records_returned": self.records_returned,
            "bytes_sent": self.bytes_sent,
            "by_method": dict(self.by_method),
            "ids_withheld": list(self.ids_withheld),
        }
