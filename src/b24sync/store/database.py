"""Database URLs and engines: one place that turns settings into a connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine

from b24sync.store.embedded import EmbeddedPostgres, TcpAccess


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

    def __init__(self, database_url: str | None, data_dir: Path, tcp_port: int = 0) -> None:
        """``tcp_port``: where an embedded server also listens on 127.0.0.1 (0: socket only)."""
        self._configured = database_url
        self._embedded = None if database_url else EmbeddedPostgres(data_dir, tcp_port or None)
        self.url: str = database_url or ""

    @property
    def is_embedded(self) -> bool:
        return self._embedded is not None

    @property
    def tcp(self) -> TcpAccess | None:
        """How other programs reach an embedded server over TCP (None: DATABASE_URL or socket)."""
        return self._embedded.tcp if self._embedded is not None else None

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


@dataclass
class PooledDatabase:
    """A few autocommit connections the service's requests, SSE polls and events reuse; the
    pool opens on first use, in the running event loop."""

    url: str
    size: int = 8
    _pool: AsyncConnectionPool | None = field(default=None, repr=False)

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection from the pool, waiting up to ``timeout`` s (the pool's 30 s if None)."""
        if self._pool is None:
            self._pool = AsyncConnectionPool(
                libpq_url(self.url),
                min_size=1,
                max_size=self.size,
                kwargs={"autocommit": True},
                open=False,
            )
        await self._pool.open()  # safe to repeat
        async with self._pool.connection(timeout=timeout) as conn:
            yield conn

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
