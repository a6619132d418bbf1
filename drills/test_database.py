"""PostgreSQL under trouble: its disk fills up, it restarts mid-sync; and text that PostgreSQL
cannot store as typed (NUL) or that looks like an escape of it (a typed ``\\u0000``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drills.compare import portal_records
from drills.database import CannotMount, SmallDisk, restartable_server, small_tablespace
from drills.harness import Drill, Processes, drill_env, portal, query, run_log, wait_until

TYPED_ESCAPE = "Price \\u0000 list"  # as typed: a backslash, "u", four zeros


@pytest.fixture
def small_disk(pg_server_url: str, database_url: str) -> Iterator[SmallDisk]:
    try:
        with small_tablespace(pg_server_url, database_url) as disk:
            yield disk
    except CannotMount as exc:
        pytest.skip(f"cannot mount a small tmpfs for the mirror's tablespace: {exc}")


def test_database_disk_fills_up(
    drill: Drill, database_url: str, processes: Processes, small_disk: SmallDisk
) -> None:
    """The mirror's tablespace is an 8 MB tmpfs: a big sync fails with the reason in the run
    log and loses none of the data it had; once there is room, the next sync completes."""
    with portal({"deal": 1000}) as p:
        env = drill_env(database_url, p)
        assert processes.sync("deal", "full", env=env).summary()["status"] == "success"
        good = portal_records(p.emu, "deal")
        for record_id in range(1, 101):
            p.edit("deal", record_id, {"TITLE": f"edited before the disk filled {record_id}"})
        p.seed(deal=30000)
        full = processes.sync("deal", "full", env=env, timeout=180)
        assert full.returncode == 1, full.stdout + full.stderr[-2000:]
        assert "Traceback" not in full.stderr, full.stderr[-3000:]
        failed = run_log(database_url, "deal")[-1]
        assert failed["status"] == "failed" and "space" in (failed["error"] or ""), failed
        now = portal_records(p.emu, "deal")
        rows = dict(
            query(database_url, "SELECT id, _raw FROM bitrix24.crm_deal WHERE _deleted_at IS NULL")
        )
        kept = [rid for rid in good if rows.get(rid) in (good[rid], now[rid])]
        assert len(kept) == len(good), f"{len(good) - len(kept)} good rows lost or damaged"
        small_disk.grow("512M")
        done = processes.sync("deal", "full", env=env, timeout=180).summary()
        assert done["status"] == "success", done
        drill.verdict(
            database_url,
            p,
            good_rows_kept=f"{len(kept)} of {len(good)}",
            failed_run_fetched=failed["fetched"],
            run_log_error=repr((failed["error"] or "")[:90]),
        )


def test_nul_and_a_typed_escape(drill: Drill, database_url: str, processes: Processes) -> None:
    """A title with the six characters ``\\u0000`` and a user field whose label holds a real
    NUL byte: both syncs succeed and the title is stored exactly as typed."""
    with portal({"deal": 200, "lead": 200}) as p:
        env = drill_env(database_url, p)
        for entity in ("deal", "lead"):
            p.add_user_field(entity, "UF_CRM_DRILL_NUL", "label with a NUL \x00 inside")
            p.edit(entity, 7, {"TITLE": TYPED_ESCAPE, "UF_CRM_DRILL_NUL": "typed \\u0000 too"})
        summaries = [processes.sync(e, "full", env=env).summary() for e in ("deal", "lead")]
        assert [s["status"] for s in summaries] == ["success", "success"], summaries
        for entity in ("deal", "lead"):
            stored = query(
                database_url,
                f"SELECT title, _raw->>'TITLE' FROM bitrix24.crm_{entity} WHERE id = 7",
            )
            assert stored == [(TYPED_ESCAPE, TYPED_ESCAPE)], (entity, stored)
        drill.verdict(database_url, p, ("deal", "lead"), title_stored=repr(TYPED_ESCAPE))


def test_database_restarts_mid_sync(drill: Drill, processes: Processes, tmp_path: Path) -> None:
    """PostgreSQL stops (fast) and starts again while `sync deal --full --json` runs: the CLI
    exits non-zero with one short line and no traceback, the run log says 'failed' with the
    database's reason, and the next run completes."""
    with restartable_server(tmp_path) as pg, portal({"deal": 20000}, latency_ms=200) as p:
        url = pg.database_url
        env = drill_env(url, p)
        run = processes.start("sync", "deal", "--full", "--json", env=env)
        wait_until(
            lambda: bool(run_log(url)) and (run_log(url)[-1]["fetched"] or 0) > 0,
            "the sync under way",
            60,
            0.05,
        )
        pg.restart(down_seconds=2)
        assert run.popen.wait(timeout=120) != 0, run.output()[-2000:]
        stderr = run.stderr()
        last_line = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        assert "Traceback" not in stderr, stderr[-3000:]
        assert 0 < len(last_line) <= 200, last_line
        logged = run_log(url, "deal")[-1]
        assert logged["status"] == "failed" and logged["error"], logged
        p.faults(latency_ms=0)
        done = processes.sync("deal", "full", env=env, timeout=180).summary()
        assert done["status"] == "success", done
        drill.verdict(
            url,
            p,
            cli_exit=run.popen.returncode,
            cli_said=repr(last_line[:100]),
            cli_stderr_lines=len(stderr.splitlines()),
            run_log=f"{logged['status']}: {(logged['error'] or '')[:80]!r}",
        )
