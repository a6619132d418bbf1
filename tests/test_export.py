"""The keyset range export: every record exactly once, whatever the ID layout."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from b24emu import Emulator, create_app
from b24sync.bitrix.auth import WebhookAuth
from b24sync.bitrix.client import BitrixClient
from b24sync.bitrix.export import ID_MAX, ListMethod, export_records
from b24sync.bitrix.limiter import BucketRule, LeakyBucket
from b24sync.config import WebhookUrl


def portal_with_ids(ids: set[int]) -> Emulator:
    emu = Emulator(webhook_token="exporttoken")
    top = max(ids, default=0)
    store = emu.portal.store("lead")
    for _ in range(top):
        emu.portal.add("lead", {"TITLE": "x"}, notify=False)
    for rid in range(1, top + 1):
        if rid not in ids:
            store.remove(rid)
    return emu


async def exported(emu: Emulator, **kwargs: Any) -> tuple[list[int], list[tuple[int, int]]]:
    """The IDs the export yielded, and the intervals its pages found empty."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emu))) as http:
        client = BitrixClient(
            http,
            WebhookAuth(WebhookUrl.parse("http://emu/rest/1/exporttoken/")),
            limiter=LeakyBucket(BucketRule(rate=1000, burst=10000)),
        )
        ids: list[int] = []
        absent: list[tuple[int, int]] = []
        async for page in export_records(
            client, ListMethod("crm.lead.list"), select=["ID"], **kwargs
        ):
            ids.extend(int(r["ID"]) for r in page.records)
            absent.extend(page.absent)
        return ids, absent


async def exported_ids(emu: Emulator, **kwargs: Any) -> list[int]:
    return (await exported(emu, **kwargs))[0]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.sets(st.integers(min_value=1, max_value=1500), max_size=600),
    commands=st.integers(min_value=1, max_value=50),
    parallel=st.integers(min_value=1, max_value=8),
)
def test_every_record_exactly_once_with_any_gaps(
    ids: set[int], commands: int, parallel: int
) -> None:
    emu = portal_with_ids(ids)
    got, absent = asyncio.run(exported(emu, commands_per_call=commands, calls_in_flight=parallel))
    assert len(got) == len(set(got))
    assert set(got) == ids
    # every other ID was read and found empty (what a full sync marks deleted), up to the end
    assert absent and max(hi for _, hi in absent) == ID_MAX
    empty = {i for lo, hi in absent for i in range(lo, min(hi, 1600) + 1)}
    assert empty == set(range(1, 1601)) - ids


@pytest.mark.parametrize("start_after", [0, 49, 50, 51, 777])
async def test_start_after_resumes_exactly_after_the_checkpoint(start_after: int) -> None:
    emu = portal_with_ids(set(range(1, 1001)))
    got = await exported_ids(emu, start_after=start_after, commands_per_call=3)
    assert sorted(got) == list(range(start_after + 1, 1001))


async def test_records_deleted_or_added_during_the_export() -> None:
    emu = portal_with_ids(set(range(1, 3001)))
    original = emu.portal.list
    calls = 0

    def list_and_mutate(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:  # after the probe: delete ahead of the export, add beyond the top
            for rid in (1500, 1501, 2999):
                emu.portal.delete("lead", rid)
            for _ in range(70):
                emu.portal.add("lead", {"TITLE": "late"})
        return original(*args, **kwargs)

    emu.portal.list = list_and_mutate  # type: ignore[method-assign]
    got = await exported_ids(emu, commands_per_call=5)
    assert len(got) == len(set(got))
    assert set(got) == set(emu.portal.store("lead").records)


async def test_filter_is_applied_to_every_range() -> None:
    emu = portal_with_ids(set(range(1, 400)))
    for rid in range(1, 400, 3):
        emu.portal.update("lead", rid, {"STATUS_ID": "JUNK"})
    got = await exported_ids(emu, filter={"STATUS_ID": "JUNK"}, commands_per_call=2)
    assert sorted(got) == list(range(1, 400, 3))


@pytest.mark.parametrize(
    "value",
    [123456789012345678901234567890, -9223372036854775809, 0.0009093284606933594, 2**63 - 1],
    ids=["beyond 64 bits", "just below int64", "long fraction", "int64 max"],
)
@pytest.mark.parametrize("padding", [0, 100_000], ids=["small answer", "large answer"])
async def test_answers_are_read_exactly_whatever_json_holds(value: Any, padding: int) -> None:
    """The client hands over what the portal wrote, in small answers and large ones (read in a
    thread): integers beyond 64 bits whole (the faster reader would make them floats), floats
    and text as written. The emulator writes them whole too."""
    emu = portal_with_ids({1})
    emu.portal.store("lead").records[1].update({"COMMENTS": "Ж" * padding + "ok", "TITLE": value})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(emu))) as http:
        client = BitrixClient(
            http,
            WebhookAuth(WebhookUrl.parse("http://emu/rest/1/exporttoken/")),
            limiter=LeakyBucket(BucketRule(rate=1000, burst=10000)),
        )
        lead = (await client.call("crm.lead.get", {"id": 1}))["result"]
    assert lead["TITLE"] == value and type(lead["TITLE"]) is type(value)
    assert lead["COMMENTS"] == "Ж" * padding + "ok"
