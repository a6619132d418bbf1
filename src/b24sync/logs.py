"""One logging setup: key=value lines, every record passed through the redaction filter."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path

from b24sync.redaction import redact


class RedactionFilter(logging.Filter):
    """Rewrites each record's final message with secrets masked (also in exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... msg="..."`` plus any ``extra`` fields given as kv=."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "kv", {}) or {})
        line = " ".join(f"{k}={_quote(str(v))}" for k, v in fields.items())
        if record.exc_text:
            line += "\n" + record.exc_text
        return redact(line)


class RunLog:
    """A run's log lines: the first ``head`` and the last ``tail`` of them, so a storm of retries
    neither grows it without end nor pushes out how the run ended."""

    def __init__(self, head: int = 150, tail: int = 50) -> None:
        self.first: list[str] = []
        self.last: deque[str] = deque(maxlen=tail)
        self.head = head
        self.left_out = 0

    def add(self, line: str) -> None:
        if len(self.first) < self.head:
            self.first.append(line)
            return
        if len(self.last) == self.last.maxlen:
            self.left_out += 1
        self.last.append(line)

    def lines(self) -> list[str]:
        gap = [f"... {self.left_out} lines left out ..."] if self.left_out else []
        return [*self.first, *gap, *self.last]


_run_log: ContextVar[RunLog | None] = ContextVar("b24sync_run_log", default=None)


class RunLogHandler(logging.Handler):
    """Copies each record logged inside a run (its task and the tasks it starts) to that run's
    log: ``12:00:07 warning retrying crm.deal.list ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        run_log = _run_log.get()
        if run_log is not None:
            when = time.strftime("%H:%M:%S", time.gmtime(record.created))
            run_log.add(redact(f"{when} {record.levelname.lower()} {record.getMessage()}"))


RUN_LOG = RunLogHandler(logging.INFO)


@asynccontextmanager
async def capturing_run_log() -> AsyncIterator[RunLog]:
    """What is logged until the block ends, by this task and the tasks it starts."""
    root = logging.getLogger()
    if RUN_LOG not in root.handlers:  # a process that never called configure_logging
        root.addHandler(RUN_LOG)
    run_log = RunLog()
    token = _run_log.set(run_log)
    try:
        yield run_log
    finally:
        _run_log.reset(token)


def _handler(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(RedactionFilter())
    return handler


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_.:/+@" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def configure_logging(
    debug: bool = False, log_file: Path | None = None, *, quiet: bool = False
) -> None:
    """Key=value lines on stderr. With ``log_file`` the lines go there and stderr keeps warnings
    and errors only (`b24sync run`, whose terminal is read by a person); ``quiet`` keeps only
    those on stderr too (one-off commands). Every run's own log is kept whatever the console
    shows."""
    console = _handler(logging.StreamHandler(sys.stderr))
    handlers: list[logging.Handler] = [console, RUN_LOG]
    if log_file is not None:
        handlers.append(_handler(logging.FileHandler(log_file, encoding="utf-8")))
    if (log_file is not None or quiet) and not debug:
        console.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    noisy_loggers = ("httpx", "httpcore", "uvicorn.access", "asyncio", "pgserver", "alembic")
    for noisy in (*noisy_loggers, *(() if debug else ("procrastinate", "sse_starlette"))):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "procrastinate"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
