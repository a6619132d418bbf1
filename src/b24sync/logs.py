"""One logging setup: key=value lines, every record passed through the redaction filter."""

from __future__ import annotations

import logging
import sys
import time
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


RUN_LOG_LINES = 200  # a run's log keeps its first lines; a storm of retries is not a story
_run_lines: ContextVar[list[str] | None] = ContextVar("b24sync_run_lines", default=None)


class RunLogHandler(logging.Handler):
    """Copies each record logged inside a run (its task and the tasks it starts) to that run's
    lines: ``12:00:07 warning retrying crm.deal.list ...``."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = _run_lines.get()
        if lines is None or len(lines) >= RUN_LOG_LINES:
            return
        when = time.strftime("%H:%M:%S", time.gmtime(record.created))
        lines.append(redact(f"{when} {record.levelname.lower()} {record.getMessage()}"))


RUN_LOG = RunLogHandler(logging.INFO)


@asynccontextmanager
async def capturing_run_log() -> AsyncIterator[list[str]]:
    """The lines logged until the block ends, by this task and the tasks it starts."""
    root = logging.getLogger()
    if RUN_LOG not in root.handlers:  # a process that never called configure_logging
        root.addHandler(RUN_LOG)
    lines: list[str] = []
    token = _run_lines.set(lines)
    try:
        yield lines
    finally:
        _run_lines.reset(token)


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
