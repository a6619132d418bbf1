"""The portal misbehaves or changes under a running sync: faults, edits, lapsed tokens, a
damaged answer. Each sync is a `b24sync sync` process against b24emu over HTTP."""

from __future__ import annotations

import random

import pytest

from drills.harness import (
    Drill,
    Processes,
    application_env,
    drill_env,
    portal,
    query,
    reconcile,
    run_log,
    wait_until,
)

FAULTS = {"error_503": 0.3, "error_500": 0.05, "drop": 0.02}


def test_portal_faults_during_full_and_incremental(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """30 % 503, 5 % 500 and 2 % dropped connections: the retries carry every run through."""
    counts = {"deal": 3000, "contact": 2000}
    with portal(counts) as p:
        env = drill_env(database_url, p)
        p.faults(**FAULTS)
        summaries = [processes.sync(entity, "full", env=env).summary() for entity in counts]
        for record_id in random.Random(1).sample(range(1, 3001), 300):
            p.edit("deal", record_id, {"TITLE": f"edited under faults {record_id}"})
        for record_id in range(1, 101):
            p.edit("contact", record_id, {"NAME": f"edited {record_id}"})
        summaries += [processes.sync(entity, "incremental", env=env).summary() for entity in counts]
        assert [s["status"] for s in summaries] == ["success"] * 4, summaries
        p.faults(error_503=0, error_500=0, drop=0)
        drill.verdict(
            database_url,
            p,
            tuple(counts),
            faults_injected=p.emu.stats.faults_injected,
            sync_api_calls=sum(s["api_calls"] for s in summaries),
        )


def test_edits_and_deletes_during_incremental(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """Records edited, added and deleted while an incremental run reads: the next incremental
    and a reconcile bring the mirror level with the portal."""
    with portal({"deal": 4000}) as p:
        env = drill_env(database_url, p)
        assert processes.sync("deal", "full", env=env).summary()["status"] == "success"
        for record_id in range(1, 4001, 2):
            p.edit("deal", record_id, {"TITLE": f"before the run {record_id}"})
        p.faults(latency_ms=1000)  # every call takes a second: the run is open for a while
        runs_before = len(run_log(database_url, "deal"))
        run = processes.start("sync", "deal", "--incremental", "--json", env=env)
        wait_until(
            lambda: len(run_log(database_url, "deal")) > runs_before, "the incremental starts"
        )
        chosen = random.Random(2).sample(range(1, 4001), 250)
        edited, deleted = chosen[:150], chosen[150:]
        for record_id in edited:
            p.edit("deal", record_id, {"TITLE": f"during the run {record_id}"})
        p.delete("deal", deleted)
        p.add("deal", [f"added during the run {n}" for n in range(20)])
        edits_during = run.running()
        assert run.popen.wait(timeout=120) == 0, run.output()[-3000:]
        p.faults(latency_ms=0)
        follow_up = processes.sync("deal", "incremental", env=env).summary()
        reconciled = reconcile(database_url, p, "deal")
        assert follow_up["status"] == reconciled.status == "success"
        assert edits_during, "the edits were meant to land while the run was open"
        drill.verdict(
            database_url,
            p,
            edited=len(edited),
            deleted=len(deleted),
            added=20,
            marked_deleted=reconciled.deleted,
        )


@pytest.mark.parametrize("auth", ["webhook", "application"])
def test_expired_token_in_a_loop(
    drill: Drill, database_url: str, processes: Processes, auth: str
) -> None:
    """Every call answered 401 expired_token: the run fails soon with that reason in the run
    log (a renewed token does not help, so renewing again and again is no way out); once the
    portal recovers, the next run catches up."""
    with portal({"deal": 1500}) as p:
        env = (
            application_env(database_url, p)
            if auth == "application"
            else drill_env(database_url, p)
        )
        assert processes.sync("deal", "full", env=env).summary()["status"] == "success"
        for record_id in range(1, 301):
            p.edit("deal", record_id, {"TITLE": f"edited while tokens lapse {record_id}"})
        p.faults(expired_token=1.0)
        failed = processes.sync("deal", "incremental", env=env, timeout=90)
        calls_while_refused = p.emu.stats.faults_injected
        p.faults(expired_token=0)
        assert failed.returncode == 1, failed.stderr[-2000:]
        assert "Traceback" not in failed.stderr, failed.stderr[-3000:]
        last = run_log(database_url, "deal")[-1]
        assert last["status"] == "failed" and "expired" in (last["error"] or ""), last
        recovered = processes.sync("deal", "incremental", env=env).summary()
        assert recovered["status"] == "success", recovered
        drill.verdict(
            database_url,
            p,
            refused_calls=calls_while_refused,
            failed_run_seconds=f"{failed.seconds:.1f}",
            run_log_error=repr((last["error"] or "")[:80]),
        )


def test_list_page_with_a_record_missing_its_id(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """List pages where one record comes without its ID. Now and then (10 % of pages): the run
    ends without a traceback and stores every record (or fails saying why). On every page: the
    run fails in bounded time with a clear reason and loses none of the rows it had; once the
    portal answers whole pages again, the next run catches up."""
    with portal({"deal": 2500}) as p:
        env = drill_env(database_url, p)
        p.faults(missing_id=0.1)
        now_and_then = processes.sync("deal", "full", env=env)
        p.faults(missing_id=0)
        assert p.emu.stats.ids_withheld, "the fault did not fire"
        assert "Traceback" not in now_and_then.stderr, now_and_then.stderr[-3000:]
        first = run_log(database_url, "deal")[-1]
        if first["status"] == "failed":
            assert "ID" in (first["error"] or ""), first
        else:
            assert first["status"] == "success", first
            stored = {r[0] for r in query(database_url, "SELECT id FROM bitrix24.crm_deal")}
            assert stored == set(p.emu.portal.store("deal").records), "records not stored"
        before = dict(query(database_url, "SELECT id, _raw FROM bitrix24.crm_deal"))
        for record_id in range(1, 201):
            p.edit("deal", record_id, {"TITLE": f"edited on a damaged portal {record_id}"})
        p.faults(missing_id=1.0)
        every_page = processes.sync("deal", "incremental", env=env, timeout=120)
        p.faults(missing_id=0)
        assert "Traceback" not in every_page.stderr, every_page.stderr[-3000:]
        second = run_log(database_url, "deal")[-1]
        assert second["status"] == "failed" and "ID" in (second["error"] or ""), second
        after = dict(query(database_url, "SELECT id, _raw FROM bitrix24.crm_deal"))
        assert after == before, "a run over damaged pages changed the rows it had"
        assert processes.sync("deal", "incremental", env=env).summary()["status"] == "success"
        drill.verdict(
            database_url,
            p,
            records_sent_without_id=len(p.emu.stats.ids_withheld),
            occasional_damage=first["status"],
            every_page_damaged=f"{second['status']} after {every_page.seconds:.1f} s",
            run_log_error=repr((second["error"] or "")[:90]),
        )
