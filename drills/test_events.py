"""Events reaching a running `b24sync serve`: a storm, a crash while applying, garbage."""

from __future__ import annotations

import random
import string
import time
from collections import Counter
from urllib.parse import urlencode

import httpx
from tests.portal import APPLICATION_TOKEN

from drills.harness import (
    RECEIVER_PATH,
    Drill,
    Processes,
    event_jobs,
    inbox,
    portal,
    query,
    scalar,
    synced_service,
    wait_until,
)

STORM = 3000


def titles_match(database_url: str, prefix: str, expected: int) -> bool:
    found = scalar(
        database_url,
        "SELECT count(*) FROM bitrix24.crm_deal WHERE title LIKE %s AND _deleted_at IS NULL",
        (prefix + "%",),
    )
    return int(found) == expected


def test_event_storm(drill: Drill, database_url: str, processes: Processes) -> None:
    """3,000 edits in a burst, each an event POSTed by the portal's outbound webhook: every one
    reaches its row."""
    with portal({"deal": STORM}) as p:
        _, _ = synced_service(processes, database_url, p)
        calls_before = p.calls()
        for record_id in range(1, STORM + 1):
            p.edit("deal", record_id, {"TITLE": f"storm {record_id}"})
        caught_up = wait_until(
            lambda: titles_match(database_url, "storm ", STORM),
            "every edit applied",
            120,
            0.5,
            explain=lambda: event_jobs(database_url),
        )
        delivered = Counter(d["status"] for d in p.emu.events.delivered)
        assert delivered == {200: STORM} and p.emu.events.failed_deliveries == 0, delivered
        received, pending = inbox(database_url)
        drill.verdict(
            database_url,
            p,
            events=received,
            pending=pending,
            caught_up_after_last_edit_s=f"{caught_up:.1f}",
            apply_calls=p.calls() - calls_before,
        )


def test_serve_killed_while_applying_events(
    drill: Drill, database_url: str, processes: Processes
) -> None:
    """kill -9 of serve in the middle of an apply_events job; after a restart, every event
    received before the kill is applied within 60 s, with nobody's help."""
    with portal({"deal": 2000}) as p:
        serve, base = synced_service(processes, database_url, p)
        p.faults(latency_ms=4000)  # the apply's batch call takes 4 s: a wide window for the kill
        for record_id in range(1, 501):
            p.edit("deal", record_id, {"TITLE": f"before the crash {record_id}"})
        wait_until(lambda: inbox(database_url)[0] == 500, "500 events received", 60)
        wait_until(
            lambda: (
                scalar(
                    database_url,
                    "SELECT count(*) FROM procrastinate_jobs "
                    "WHERE task_name = 'apply_events' AND status = 'doing'",
                )
                > 0
            ),
            "an apply_events job running",
            30,
        )
        processes.kill9(serve)
        pending_at_kill = inbox(database_url)[1]
        p.faults(latency_ms=0)
        restarted = time.monotonic()
        processes.serve(serve.env, port=int(base.rsplit(":", 1)[1]))
        wait_until(
            lambda: inbox(database_url)[1] == 0,
            "every event received before the kill applied within 60 s of the restart",
            60 - (time.monotonic() - restarted),
            0.5,
            explain=lambda: event_jobs(database_url),
        )
        applied_in = time.monotonic() - restarted
        assert titles_match(database_url, "before the crash ", 500)
        drill.verdict(
            database_url,
            p,
            pending_at_kill=pending_at_kill,
            applied_after_restart_s=f"{applied_in:.1f}",
        )


def fuzzed_bodies(rng: random.Random, count: int, token: str | None) -> list[bytes]:
    """Event-shaped and shapeless bodies: odd IDs (Unicode digits, 5,000 digits, 2**63 and up),
    odd timestamps, NUL bytes, broken UTF-8, huge fields. ``token`` None: wrong tokens."""
    odd_numbers = [
        "²", "①", "٣", "７", "5" * 5000, str(2**63), str(2**63 - 1), str(2**64), "-1", "0",
        "1e5", " 7", "7 ", "0x10", "", "1\x00", "١٢", "9" * 19, "NaN",
    ]  # fmt: skip
    wrong_tokens = [
        "", "x", APPLICATION_TOKEN + "x", APPLICATION_TOKEN[:-1], APPLICATION_TOKEN.upper(),
        "\x00" + APPLICATION_TOKEN, "я" * 40, "t" * 100_000, APPLICATION_TOKEN + "\x00",
    ]  # fmt: skip
    events = ["ONCRMDEALUPDATE", "ONCRMDEALADD", "ONCRMDEALDELETE", "oncrmdealupdate",
              "ONCRMDEALUPDATE\x00", "ONCRMSMTHUPDATE", "", "Ｏ" * 10, "ONCRMLEADUPDATE"]  # fmt: skip
    bodies: list[bytes] = []
    for n in range(count):
        fields: list[tuple[str, str]] = [
            ("event", rng.choice(events)),
            ("data[FIELDS][ID]", rng.choice([*odd_numbers, str(rng.randint(1, 600))])),
            ("ts", rng.choice([*odd_numbers, "1764000000"])),
            (
                "auth[member_id]",
                rng.choice(["b24emu0000000000000000000000000a", "a\x00b", "я" * 70, ""]),
            ),
            ("auth[domain]", rng.choice(["b24emu.local", "\x00", "x" * 3000])),
            ("auth[application_token]", token if token is not None else rng.choice(wrong_tokens)),
        ]
        rng.shuffle(fields)
        shape = n % 10
        if shape == 0:  # a key given twice, or as an array
            fields.append(("data[FIELDS][ID][]", "1"))
            fields.append(("data[FIELDS][ID]", rng.choice(odd_numbers)))
        if shape == 1:  # broken UTF-8 and raw bytes
            bodies.append(urlencode(fields).encode() + b"&data[FIELDS][ID]=\xff\xfe\x00")
            continue
        if shape == 2:  # not a form at all
            bodies.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2000))))
            continue
        if shape == 3:  # a field missing
            fields.pop(rng.randrange(len(fields)))
        if shape == 4:  # random printable junk as values
            fields = [
                (k, "".join(rng.choices(string.printable, k=rng.randint(0, 80)))) for k, _ in fields
            ]
            if token is not None:
                fields.append(("auth[application_token]", token))
        bodies.append(urlencode(fields).encode())
    return bodies


def test_malformed_events(drill: Drill, database_url: str, processes: Processes) -> None:
    """2,000 fuzzed bodies at the receiver: never a 5xx; a wrong token stores nothing."""
    rng = random.Random(2026)
    with portal({"deal": 600}) as p:
        _, base = synced_service(processes, database_url, p)
        statuses: Counter[int] = Counter()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        with httpx.Client(base_url=base, timeout=30, headers=headers) as client:

            def post_all(bodies: list[bytes]) -> None:
                for body in bodies:
                    statuses[client.post(RECEIVER_PATH, content=body).status_code] += 1

            post_all(fuzzed_bodies(rng, 1000, token=None))
            stored_for_wrong_token = inbox(database_url)[0]
            post_all(fuzzed_bodies(rng, 1000, token=APPLICATION_TOKEN))
        server_errors = sum(n for status, n in statuses.items() if status >= 500)
        assert server_errors == 0, statuses
        assert stored_for_wrong_token == 0
        received, _ = inbox(database_url)
        wait_until(lambda: inbox(database_url)[1] == 0, "the accepted events applied", 60, 0.5)
        odd_rows = query(
            database_url,
            "SELECT count(*) FROM b24sync.received_events WHERE record_id <= 0 OR record_id IS NULL",
        )[0][0]
        assert odd_rows == 0
        drill.verdict(
            database_url,
            p,
            answers=dict(sorted(statuses.items())),
            server_errors=server_errors,
            stored_for_wrong_token=stored_for_wrong_token,
            accepted_events=received,
        )
