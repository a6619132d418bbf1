"""A real PostgreSQL started from the pgserver wheel when DATABASE_URL is unset.

pgserver starts its server on a Unix socket only, which no BI tool on another runtime (Metabase
in Docker, DBeaver, Power BI over an SSH tunnel) can use. With a ``tcp_port`` the server is
started by us, with pgserver's binaries, listening on 127.0.0.1 as well. Over TCP only the
read-only role ``bi`` may log in (SELECT on the mirror, with the password kept in the data
directory); the superuser stays behind the socket, the service's own way in.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from b24sync.config import stored_secret
from b24sync.errors import EmbeddedPostgresError
from b24sync.store.mirror import DATA_SCHEMA

log = logging.getLogger(__name__)

PASSWORD_FILE = "bi_password"
TCP_HOST = "127.0.0.1"
BI_ROLE = "bi"
# Ours, not pgserver's: trust on the socket (its directory is the server user's); over TCP the
# read-only role with its password, and no one else.
HBA_RULES = f"""\
# written by b24sync at every start of the embedded server
local all all trust
host  all {BI_ROLE} 127.0.0.1/32 scram-sha-256
host  all {BI_ROLE} ::1/128      scram-sha-256
"""
GRANT_READING = (
    f"CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA}",
    f"GRANT USAGE ON SCHEMA {DATA_SCHEMA} TO {BI_ROLE}",
    f"GRANT SELECT ON ALL TABLES IN SCHEMA {DATA_SCHEMA} TO {BI_ROLE}",
    f"ALTER DEFAULT PRIVILEGES IN SCHEMA {DATA_SCHEMA} GRANT SELECT ON TABLES TO {BI_ROLE}",
)


@dataclass(frozen=True)
class TcpAccess:
    """How a BI tool reaches the embedded server."""

    port: int
    password: str

    @property
    def url(self) -> str:
        password = quote(self.password, safe="")
        return f"postgresql://{BI_ROLE}:{password}@{TCP_HOST}:{self.port}/postgres"


class EmbeddedPostgres:
    """Owns one pgserver instance under ``data_dir/postgres``; reused across starts.

    The server keeps its data directory; :meth:`stop` shuts it down when this process is the last
    one using it (pgserver counts the processes; an interpreter exit stops it too).
    """

    def __init__(self, data_dir: Path, tcp_port: int | None = None) -> None:
        self.data_dir = data_dir
        self.pgdata = (data_dir / "postgres").resolve()
        self.tcp_port = tcp_port
        self.tcp: TcpAccess | None = None
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; return a libpq URI for database ``postgres``."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        # pgserver keeps its lock files in the user runtime dir, which daemons often lack.
        if "XDG_RUNTIME_DIR" not in os.environ:
            runtime = self.pgdata.parent / "run"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        try:
            if self.tcp_port is not None and (self.pgdata / "PG_VERSION").exists():
                self._start_listening(self.tcp_port)  # a no-op when it already runs
            self._server = self._attach()
            if self.tcp_port is not None and self._info().port != self.tcp_port:
                self._restart_listening(self.tcp_port)
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
            # pgserver raises bare exceptions from initdb/pg_ctl
            raise EmbeddedPostgresError(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}. "
                + self._advice()
            ) from exc
        url = self._socket_url()
        if self.tcp_port is not None and self._info().port == self.tcp_port:
            self.tcp = TcpAccess(self.tcp_port, self._grant_bi_reading(url))
        log.debug("embedded postgres ready", extra={"kv": {"pgdata": str(self.pgdata)}})
        return url

    def _advice(self) -> str:
        log_file = self.pgdata / "log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        if "could not bind" in tail or "already in use" in tail:
            return f"Port {self.tcp_port} is taken: set B24SYNC_DB_PORT to another one."
        return "Set DATABASE_URL to use an existing server instead."

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def _attach(self) -> Any:
        from pgserver.postgres_server import get_server  # lazily: a large wheel, needed only here

        return get_server(self.pgdata, cleanup_mode="stop")

    def _info(self) -> Any:
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            raise RuntimeError("the server is not running")
        return info

    def _socket_url(self) -> str:
        info = self._info()
        return f"postgresql://postgres@/postgres?host={info.socket_dir}&port={info.port}"

    def _restart_listening(self, port: int) -> None:
        """The server pgserver has just made listens on its socket only: when this process is its
        only user, stop it and start it again listening on TCP too (once per new data dir)."""
        if self._server.global_process_id_list.get() != [os.getpid()]:
            log.warning("embedded postgres is used by another process: not listening on TCP")
            return
        self._server.cleanup()
        self._start_listening(port)
        self._server = self._attach()

    def _start_listening(self, port: int) -> None:
        """``pg_ctl start`` as pgserver would, but listening on 127.0.0.1:``port`` too."""
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.postgres_server import PostgresServer
        from pgserver.utils import PostmasterInfo, find_suitable_socket_dir

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is not None and info.is_running():
            return
        user = "pgserver" if os.geteuid() == 0 else None  # pgserver's own OS user under root
        socket_dir = find_suitable_socket_dir(self.pgdata, PostgresServer.runtime_path)
        if user is not None and socket_dir != self.pgdata:
            socket_dir.chmod(0o777)
        (self.pgdata / "pg_hba.conf").write_text(HBA_RULES)
        log_file = self.pgdata / "log"
        options = f"-h {TCP_HOST} -p {port} -k {shlex.quote(str(socket_dir))}"
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-o", options]
        # No pipes: the server inherits pg_ctl's output and would hold them open for good.
        started = subprocess.run(
            [*command, "-l", str(log_file), "start"],
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        if started.returncode != 0:
            last_lines = log_file.read_text(errors="replace").splitlines()[-3:]
            raise RuntimeError(" / ".join(last_lines) or f"pg_ctl exited {started.returncode}")

    def _grant_bi_reading(self, url: str) -> str:
        """The read-only role BI tools log in as, with the password kept in the data dir."""
        password = stored_secret(self.data_dir, PASSWORD_FILE)
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BI_ROLE,))
            if exists.fetchone() is None:
                conn.execute(f"CREATE ROLE {BI_ROLE} LOGIN")
            conn.execute(
                psycopg.sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    psycopg.sql.Identifier(BI_ROLE), psycopg.sql.Literal(password)
                )
            )
            for statement in GRANT_READING:
                conn.execute(statement)
        return password
