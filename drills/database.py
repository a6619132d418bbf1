"""The database side of the drills: a disk that fills up, a server that restarts.

Both act on the PostgreSQL server itself, so they need it on this machine and root to mount a
small file system or to run ``pg_ctl`` as the server's own OS user (pgserver runs the embedded
server as ``pgserver`` when started by root).
"""

from __future__ import annotations

import pwd
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pgserver._commands import POSTGRES_BIN_PATH  # where pgserver itself finds pg_ctl
from psycopg import sql

from b24sync.store.embedded import EmbeddedPostgres
from b24sync.store.migrate import migrate


def data_directory(server_url: str) -> Path:
    with psycopg.connect(server_url, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    return Path(row[0])


class CannotMount(Exception):
    """No small file system could be mounted here (not root, or no tmpfs in this container)."""


@dataclass
class SmallDisk:
    """A tmpfs of a few megabytes holding a tablespace; :meth:`grow` frees space at once."""

    path: Path
    tablespace: str

    def grow(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)


@contextmanager
def small_tablespace(server_url: str, database_url: str, size: str = "8M") -> Iterator[SmallDisk]:
    """New tables of ``database_url`` go to a tablespace on a ``size`` tmpfs (service tables,
    temporary tables and the WAL stay where they were). Undone at the end.

    The mount point sits right under /tmp: the server's OS user must be able to reach it, and
    pytest's own temporary directories are root's alone."""
    owner = data_directory(server_url).stat()
    mount_point = Path(tempfile.mkdtemp(prefix="b24sync-drill-disk-"))
    options = f"size={size},uid={owner.st_uid},gid={owner.st_gid},mode=0700"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        raise CannotMount(mounted.stderr.strip() or f"mount exited {mounted.returncode}")
    name = f"drill_small_{mount_point.stat().st_ino}"
    database = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                    sql.Identifier(name), sql.Literal(str(mount_point))
                )
            )
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET default_tablespace = {}").format(
                    sql.Identifier(str(database)), sql.Identifier(name)
                )
            )
        yield SmallDisk(mount_point, name)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS bitrix24 CASCADE")  # its tables live there
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RESET default_tablespace").format(
                    sql.Identifier(str(database))
                )
            )
            conn.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


@dataclass
class RestartableServer:
    """An embedded PostgreSQL of the drill's own, which it may stop and start again."""

    server: EmbeddedPostgres
    database_url: str

    def restart(self, down_seconds: float) -> None:
        """``pg_ctl stop -m fast`` (every session is cut), a pause, ``pg_ctl start``."""
        pgdata = self.server.pgdata
        user = pwd.getpwuid(pgdata.stat().st_uid).pw_name
        opts = shlex.split((pgdata / "postmaster.opts").read_text())[1:]
        at = opts.index("-D")
        del opts[at : at + 2]
        pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w"]
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=True, user=user, capture_output=True)
        time.sleep(down_seconds)
        subprocess.run(
            [*pg_ctl, "-l", str(pgdata / "log"), "-o", shlex.join(opts), "start"],
            check=True,
            user=user,
            capture_output=True,
        )


@contextmanager
def restartable_server(workdir: Path) -> Iterator[RestartableServer]:
    server = EmbeddedPostgres(workdir)
    url = server.start()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE drill")
        database_url = url.replace("/postgres?", "/drill?", 1)
        migrate(database_url)
        yield RestartableServer(server, database_url)
    finally:
        server.stop()
        # pgserver knows the first postmaster only: one a drill restarted would outlive us.
        pgdata = server.pgdata
        if (pgdata / "postmaster.pid").exists():
            user = pwd.getpwuid(pgdata.stat().st_uid).pw_name
            stop = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "stop"]
            subprocess.run(stop, check=False, user=user, capture_output=True)
