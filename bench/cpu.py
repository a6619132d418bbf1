"""CPU seconds of the processes a benchmark runs, read from /proc (Linux): the 2-core machine is
shared, so a wall time means little without where the CPU went."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, waited_children: bool = False) -> float | None:
    """User + system time of a process; with ``waited_children`` also of its children that
    have ended and been waited for (a PostgreSQL server's closed backends). None when the
    process is not on this machine (or gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the name: state is fields[0]; utime, stime, cutime, cstime are fields 11-14
    ticks = fields[11:15] if waited_children else fields[11:13]
    return sum(int(t) for t in ticks) / _TICKS


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found]


def server_cpu_seconds(pgdata: Path) -> float | None:
    """All the CPU a PostgreSQL server has spent: the postmaster, its live processes and those
    that have ended (each closed connection's backend)."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    total = cpu_seconds(postmaster, waited_children=True)
    if total is None:
        return None
    return total + sum(cpu_seconds(child) or 0.0 for child in children(postmaster))
