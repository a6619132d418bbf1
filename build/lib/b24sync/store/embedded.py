"""A real PostgreSQL started from the pgserver wheel when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from b24sync.errors import EmbeddedPostgresError

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Owns one pgserver instance under ``data_dir/postgres``; reused across starts.

    The server keeps its data directory; :meth:`stop` shuts it down cleanly (pgserver also
    registers an atexit hook, so an interpreter exit stops it too).
    """

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; return a libpq URI for database ``postgres``."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock files in the user runtime dir, which daemons often lack.
        if "XDG_RUNTIME_DIR" not in os.environ:
            runtime = self.pgdata.parent / "run"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        from pgserver.postgres_server import get_server  # lazily: a large wheel, needed only here

        try:
            self._server = get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare exceptions from initdb/pg_ctl
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}. "
                "Set DATABASE_URL to use an existing server instead."
            ) from exc
        log.info("embedded postgres ready", extra={"kv": {"pgdata": str(self.pgdata)}})
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
