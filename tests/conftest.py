"""Shared fixtures: a real PostgreSQL per test, cloned from a migrated template."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql

from b24emu import Emulator, create_app
from b24sync.bitrix.client import BitrixClient
from b24sync.store.migrate import migrate
from b24sync.streams import STREAMS
from tests.portal import fast_client

TEMPLATE = "b24sync_test_template"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    """Swap the database name of a postgresql:// URL (keeps host/socket query parameters)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """The maintenance URL of a real server: TEST_DATABASE_URL, or an embedded one.

    The embedded server's data lives outside pytest's basetemp: pytest deletes all but the last
    three ``pytest-N`` directories when a session starts, so a second session started meanwhile
    (drills beside the suite) would delete this one's data under the running server.
    """
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    from b24sync.store.embedded import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="b24sync-test-pg-"))
    server = EmbeddedPostgres(data_dir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> str:
    """A database with the service migrations applied, cloned for each test."""
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    url = _with_database(pg_server_url, TEMPLATE)
    migrate(url)
    return TEMPLATE


def _fresh_database(server_url: str, template: str) -> Iterator[str]:
    name = f"b24sync_t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    yield _with_database(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A real, migrated, otherwise empty database of this test's own."""
    yield from _fresh_database(pg_server_url, template_database)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A real database with nothing in it (not even the service tables)."""
    yield from _fresh_database(pg_server_url, "template0")


@pytest.fixture
async def portal(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """Raw HTTP to the test module's ``emu`` portal, through the ASGI transport."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(emu)), base_url="http://emu"
    ) as http:
        yield http


@pytest.fixture
def declared_streams_only() -> Iterator[None]:
    """Forget the smart processes a test discovered: the registry is the process's, and the
    next test starts with the declared streams alone."""
    yield
    STREAMS.use_smart_processes([])


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[BitrixClient]:
    """A limit-free client of the test module's ``emu`` portal, through the ASGI transport."""
    transport = httpx.ASGITransport(app=create_app(emu))
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        yield fast_client(http)
