"""Fixtures of the drills: the suite's PostgreSQL fixtures, a drill clock, its processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# The same real PostgreSQL as the test suite: one embedded server, a migrated database each.
from tests.conftest import database_url, pg_server_url, template_database

from drills.harness import Drill, Processes

__all__ = ["database_url", "drill", "pg_server_url", "processes", "template_database"]


@pytest.fixture
def drill(request: pytest.FixtureRequest) -> Drill:
    """Named after the test: ``test_kill_worker_mid_sync`` -> ``kill worker mid sync``."""
    return Drill(request.node.name.removeprefix("test_").replace("_", " "))


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()
