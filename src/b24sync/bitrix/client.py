"""The async Bitrix24 REST client: one seam (an httpx.AsyncClient) to the portal.

Retries with exponential backoff and jitter for QUERY_LIMIT_EXCEEDED, 5xx, timeouts and dropped
connections; OPERATION_TIME_LIMIT waits until the method's reset (limits.md). Messages never
carry a token: :mod:`b24sync.bitrix.auth` builds the URL and the auth parameters, and an
expired application token is renewed once per call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from b24sync.bitrix.auth import RENEWABLE_CODES, PortalAuth
from b24sync.bitrix.limiter import LeakyBucket, OperatingPacer, RequestLimiter
from b24sync.errors import (
    BadRequest,
    BitrixError,
    MethodNotFound,
    OperationTimeLimit,
    PortalAuthError,
    PortalServerError,
    RateLimited,
    RecordNotFound,
)
from b24sync.redaction import redact

log = logging.getLogger(__name__)
MAX_BATCH = 50
LARGE_ANSWER = 1 << 16  # bytes
_AUTH_CODES = {
    "INVALID_CREDENTIALS",
    "NO_AUTH_FOUND",
    "ACCESS_DENIED",
    "insufficient_scope",
    "expired_token",
    "invalid_token",
    "user_access_error",
    "PORTAL_DELETED",
    "OVERLOAD_LIMIT",
    "INVALID_REQUEST",
    "WRONG_AUTH_TYPE",
}

JsonDict = dict[str, Any]


@dataclass
class RetryPolicy:
    attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        backoff: float = min(self.max_delay, self.base_delay * 2**attempt)
        return backoff * random.uniform(0.5, 1.0)


@dataclass
class CallCounters:
    http_calls: int = 0  # every HTTP request sent, refused and repeated ones included
    commands: int = 0  # methods asked for: one per call, one per command of a batch
    retries: int = 0


# The counters of the runs the current task works for, innermost last (see `counting_calls`).
_counting: ContextVar[tuple[CallCounters, ...]] = ContextVar("b24sync_counting", default=())


@asynccontextmanager
async def counting_calls() -> AsyncIterator[CallCounters]:
    """Counters of the calls made inside this block, by this task and the tasks it starts.

    Runs are asyncio tasks sharing one client, so a delta of the client's own counters would
    take in whatever ran beside them. A context variable follows the run instead: asyncio gives
    each task a copy of its creator's context, so the export's prefetching tasks count for the
    run that started them, and a run beside it never does. Blocks nest; each one counts.
    """
    counters = CallCounters()
    token = _counting.set((*_counting.get(), counters))
    try:
        yield counters
    finally:
        _counting.reset(token)


@dataclass
class BatchResult:
    result: dict[str, Any]
    errors: dict[str, JsonDict]
    total: dict[str, int]
    next: dict[str, int]
    times: dict[str, JsonDict]  # per command: the `time` block, with that method's `operating`

    def part(self, group: str) -> BatchResult:
        """The answers of the commands sent under ``group`` by :func:`grouped`, by their names."""
        start = f"{group}_"

        def own(answers: dict[str, Any]) -> dict[str, Any]:
            return {k.removeprefix(start): v for k, v in answers.items() if k.startswith(start)}

        return BatchResult(
            own(self.result), own(self.errors), own(self.total), own(self.next), own(self.times)
        )


def grouped(groups: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The commands of several reads as one batch, each under its group's name (no ``_`` in
    it): one HTTP call carries what it can for several streams, e.g. the deals an event names,
    their contacts and their product rows. :meth:`BatchResult.part` takes a group's answers."""
    return {
        f"{group}_{name}": cmd
        for group, commands in groups.items()
        for name, cmd in commands.items()
    }


def error_for(payload: Any, status: int, method: str) -> BitrixError:
    """Map an error envelope to the exception family the caller can act on."""
    code = str(payload.get("error", "")) if isinstance(payload, dict) else ""
    text = str(payload.get("error_description", "")) if isinstance(payload, dict) else ""
    message = redact(f"{method}: {code or 'error'} {text}".strip())
    kind: type[BitrixError]
    if code == "QUERY_LIMIT_EXCEEDED":
        kind = RateLimited
    elif code == "OPERATION_TIME_LIMIT":
        kind = OperationTimeLimit
    elif code in _AUTH_CODES:
        kind = PortalAuthError
    elif code == "ERROR_METHOD_NOT_FOUND":
        kind = MethodNotFound
    elif text == "Not found":
        kind = RecordNotFound
    elif status >= 500:
        kind = PortalServerError
    else:
        kind = BadRequest
    return kind(message, code=code, status=status, method=method)


@dataclass
class BitrixClient:
    http: httpx.AsyncClient
    auth: PortalAuth
    limiter: RequestLimiter = field(default_factory=LeakyBucket)
    pacer: OperatingPacer = field(default_factory=OperatingPacer)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    counters: CallCounters = field(default_factory=CallCounters)
    last_time: JsonDict = field(default_factory=dict)

    def _tally(self, *, http_calls: int = 0, commands: int = 0, retries: int = 0) -> None:
        """Count for the process (:attr:`counters`) and for every run this task works for."""
        for counters in (self.counters, *_counting.get()):
            counters.http_calls += http_calls
            counters.commands += commands
            counters.retries += retries

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> JsonDict:
        """One REST call; returns the whole envelope (result, total, next, time)."""
        self._tally(commands=1)
        return await self._post(method, dict(params or {}))

    async def batch(self, commands: Mapping[str, str], *, halt: bool = False) -> BatchResult:
        """Run ``name -> "method?query"`` commands, 50 per HTTP call (split transparently).

        ``$result[name]`` references work within one chunk of 50 only.
        """
        merged = BatchResult({}, {}, {}, {}, {})
        items = list(commands.items())
        for offset in range(0, len(items), MAX_BATCH):
            chunk = dict(items[offset : offset + MAX_BATCH])
            self._tally(commands=len(chunk))
            envelope = await self._post("batch", {"halt": 1 if halt else 0, "cmd": chunk})
            body = envelope.get("result") or {}
            for attr, key in (
                ("result", "result"),
                ("errors", "result_error"),
                ("total", "result_total"),
                ("next", "result_next"),
                ("times", "result_time"),
            ):
                part = body.get(key) or {}
                if isinstance(part, list):  # empty parts, and results of list-shaped cmd
                    part = dict(enumerate(part))
                getattr(merged, attr).update({str(k): v for k, v in part.items()})
        return merged

    async def _post(self, method: str, params: JsonDict) -> JsonDict:
        renewed = False
        commands = _commands_of(method, params)
        for attempt in range(self.retry.attempts):
            url, auth_params = await self.auth.target(self.http, method)
            outcome = await self._send(method, url, params | auth_params, commands)
            if not isinstance(outcome, BitrixError):
                return outcome
            failure = outcome
            if (
                failure.code in RENEWABLE_CODES
                and not renewed
                and await self.auth.renew(self.http, auth_params)
            ):
                renewed = True  # an expired access token: once, with the new pair
                continue
            if not isinstance(failure, (RateLimited, OperationTimeLimit, PortalServerError)):
                raise failure
            if attempt == self.retry.attempts - 1:
                raise failure
            self._tally(retries=1)
            await asyncio.sleep(self._pause(failure, attempt))
        raise AssertionError("unreachable")

    async def _send(
        self, method: str, url: str, body: JsonDict, commands: Mapping[str, str]
    ) -> JsonDict | BitrixError:
        """One HTTP request, sent when the request bucket and the commands' operating budget
        allow; the commands count as in flight until the answer (or the failure) is in."""
        spend = dict(Counter(commands.values()))
        await self.pacer.reserve(spend)
        times: list[tuple[str, JsonDict]] = []
        try:
            await self.limiter.acquire()
            self._tally(http_calls=1)
            try:
                response = await self.http.post(url, json=body)
                payload = await _parsed(response.content)
            except (httpx.TransportError, ValueError) as exc:
                return PortalServerError(
                    redact(f"{method}: {type(exc).__name__} talking to the portal"), method=method
                )
            if response.status_code == 200 and isinstance(payload, dict) and "error" not in payload:
                self.last_time = payload.get("time") or {}
                times = _command_times(commands, payload)
                return payload
            return error_for(payload, response.status_code, method)
        finally:
            self.pacer.settle(spend, times)

    def _pause(self, failure: BitrixError, attempt: int) -> float:
        if isinstance(failure, RateLimited):
            self.limiter.penalise()
        if isinstance(failure, OperationTimeLimit):
            self.pacer.blocked(failure.method, float(self.last_time.get("operating_reset_at") or 0))
            return 0.0  # the pacer waits before the next attempt
        log.info("retrying %s after %s", failure.method, failure.code or type(failure).__name__)
        return self.retry.delay(attempt)


async def _parsed(body: bytes) -> Any:
    """The answer's JSON. A batch of list pages (megabytes, tens of milliseconds to parse) is
    parsed in a thread: the event loop meanwhile serves the loader, whose database round trips
    would otherwise wait for every parse (the GIL still lets one of them run at a time)."""
    if len(body) < LARGE_ANSWER:
        return json.loads(body)
    return await asyncio.to_thread(json.loads, body)


def _commands_of(method: str, params: JsonDict) -> dict[str, str]:
    """Command name -> the method it runs: a batch's commands (the outer `batch` is not counted
    against any budget, limits.md), else the method itself."""
    if method != "batch":
        return {"": method}
    cmd = params.get("cmd") or {}
    return {
        str(name): str(text).partition("?")[0].strip().lower().removesuffix(".json")
        for name, text in cmd.items()
    }


def _command_times(commands: Mapping[str, str], payload: JsonDict) -> list[tuple[str, JsonDict]]:
    """(method, its `time` block) for every command answered, in the order they ran."""
    if set(commands) == {""}:
        return [(commands[""], payload.get("time") or {})]
    body = payload.get("result") or {}
    times = body.get("result_time") if isinstance(body, dict) else None
    if not isinstance(times, dict):
        return []
    return [
        (commands[name], block)
        for name, block in times.items()
        if name in commands and isinstance(block, dict)
    ]
