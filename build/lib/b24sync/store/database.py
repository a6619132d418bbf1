"""Database URLs and engines: one place that turns settings into a connection."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine, create_engine

from b24sync.store.embedded import EmbeddedPostgres


def sqlalchemy_url(libpq_url: str) -> str:
    """``postgresql://...`` (libpq form) -> the SQLAlchemy psycopg-3 dialect URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if libpq_url.startswith(prefix):
            return "postgresql+psycopg://" + libpq_url[len(prefix) :]
    raise ValueError("DATABASE_URL must start with postgresql://")


def libpq_url(url: str) -> str:
    """The reverse of :func:`sqlalchemy_url`, for psycopg and procrastinate."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def migration_engine(url: str) -> Engine:
    return create_engine(sqlalchemy_url(url), pool_pre_ping=True)


class DatabaseLocation(AbstractContextManager["DatabaseLocation"]):
    """Resolves where the data lives: DATABASE_URL, or an embedded server under the data dir."""

    def __init__(self, database_url: str | None, data_dir: Path) -> None:
        self._configured = database_url
        self._embedded = None if database_url else EmbeddedPostgres(data_dir)
        self.url: str = database_url or ""

    @property
    def is_embedded(self) -> bool:
        return self._embedded is not None

    def __enter__(self) -> DatabaseLocation:
        if self._embedded is not None:
            self.url = self._embedded.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._embedded is not None:
            self._embedded.stop()
