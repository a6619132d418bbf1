"""The public event receiver under fuzzing: hostile bodies never answer 5xx, nothing is stored
without the application token, and a well-formed event is stored as its (entity, record id).

The stack is in-process (b24emu, the service, the FastAPI app over httpx's ASGI transport) on a
real PostgreSQL. Each example's expected answer comes from an oracle written from the receiver's
contract (README, Events; src/b24sync/bitrix/events.py's docstring): form-encoded, at most 64 KiB
and 100 fields, UTF-8, the token checked, one of the 12 CRM events, an ID of 1-19 ASCII digits
below 2**63. Where a body has several faults, any one of their answers is accepted: the order of
the checks is the receiver's business. ``B24SYNC_FUZZ_EXAMPLES`` raises the number of bodies
(the issue's bar is 10,000); the default keeps ``make test`` quick.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import httpx
import psycopg
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from b24emu import Emulator
from b24sync.streams import Kind, streams_of
from tests.portal import APPLICATION_TOKEN, TOKEN, service_stack

FUZZ_EXAMPLES = int(os.environ.get("B24SYNC_FUZZ_EXAMPLES", "300"))
RECEIVER = "/api/v1/webhooks/bitrix"
FORM = "application/x-www-form-urlencoded"
MAX_BODY = 64 * 1024
MAX_FIELDS = 100
BIGINT_LIMIT = 2**63
ACTIONS = ("ADD", "UPDATE", "DELETE")
EVENT_ENTITY = {
    f"ONCRM{s.name.upper()}{action}": s.name for s in streams_of(Kind.OBJECT) for action in ACTIONS
}
# What a portal sends besides the event (api-reference/events/index.md).
REAL_KEYS = (
    "event",
    "event_handler_id",
    "data[FIELDS][ID]",
    "data[FIELDS]",
    "data",
    "ts",
    "auth[domain]",
    "auth[client_endpoint]",
    "auth[server_endpoint]",
    "auth[member_id]",
    "auth[application_token]",
    "auth[access_token]",
    "auth[refresh_token]",
    "auth[expires_in]",
    "auth[scope]",
    "auth[status]",
)
ASCII_ID = re.compile(r"[0-9]{1,19}")
PLAIN_MEMBER_ID = re.compile(r"[0-9a-f]{1,32}")

# --- strategies ----------------------------------------------------------------------------------

boundaries = st.sampled_from(
    [0, 1, 10**18, 10**19 - 1, 10**19, BIGINT_LIMIT - 1, BIGINT_LIMIT, BIGINT_LIMIT + 1, 2**64]
)
numbers = st.one_of(
    st.integers(1, BIGINT_LIMIT - 1).map(str),
    boundaries.map(str),
    boundaries.map(lambda n: f"-{n}"),
    st.integers(-(2**80), 2**80).map(str),
    st.integers(20, 5000).map(lambda digits: "9" * digits),  # far beyond any integer column
    st.tuples(st.integers(1, 30), st.integers(1, 10**6)).map(lambda z: "0" * z[0] + str(z[1])),
    # digits str.isdigit() accepts and int() may: ², ①, ٥, ５, Ⅻ ...
    st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=6),
    st.sampled_from(
        ["", " 5", "5 ", "+5", "5.0", "1e3", "0x1F", "5\x00", "\x005", "1_000", "٥", "５"]
    ),
    st.text(max_size=30),
)
event_names = st.one_of(
    st.sampled_from(sorted(EVENT_ENTITY)),
    st.sampled_from(sorted(EVENT_ENTITY)).map(str.lower),
    st.sampled_from(sorted(EVENT_ENTITY)).map(lambda name: f" \t{name}\n"),
    st.sampled_from(sorted(EVENT_ENTITY)).map(lambda name: f"{name}\x00"),
    st.sampled_from(["", "ONTASKADD", "ONCRMDEALADDX", "ONCRMINVOICEADD", "ONAPPINSTALL"]),
    st.text(max_size=40),
)
tokens = st.one_of(
    st.sampled_from(
        [
            APPLICATION_TOKEN,
            "",
            APPLICATION_TOKEN + "x",
            APPLICATION_TOKEN[:-1],
            APPLICATION_TOKEN.upper(),
            f" {APPLICATION_TOKEN}",
            f"{APPLICATION_TOKEN}\x00",
            "forged-token",
        ]
    ),
    st.text(max_size=40),
)
member_ids = st.one_of(
    st.text("0123456789abcdef", min_size=1, max_size=32),
    st.text(max_size=80),
    st.sampled_from(["abc\x00def", "x" * 65, "../../etc", "a'b\"c", "ü"]),
)
values = st.one_of(numbers, event_names, tokens, member_ids, st.text(max_size=200))
keys = st.one_of(st.sampled_from(REAL_KEYS), st.text(max_size=30))
content_types = st.one_of(
    st.just(FORM),
    st.sampled_from(
        [
            f"{FORM}; charset=UTF-8",
            f"{FORM}; charset=latin-1",
            FORM.upper(),
            "multipart/form-data; boundary=xyz",
            "application/json",
            "text/plain",
            "",
            "none",  # no Content-Type header at all
        ]
    ),
)
# Raw bytes spliced into an encoded body: broken percent-escapes, invalid UTF-8, separators.
JUNK = [
    b"%",
    b"%G",
    b"%zz",
    b"%2",
    b"%FF",
    b"%C3%28",
    b"%ED%A0%80",
    b"%00",
    b"\xff",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\x00",
    b"&",
    b"&&==",
    b"=",
    b";",
    b"+",
]


@dataclass(frozen=True)
class Body:
    content: bytes
    content_type: str

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.content_type == "none" else {"Content-Type": self.content_type}


@st.composite
def pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A form: each real field valid, hostile or missing on its own, then extras, any order.

    Fields vary independently so that a hostile ID often travels with the right token and event,
    the only way it reaches the parser.
    """
    fields = {
        "event": (st.sampled_from(sorted(EVENT_ENTITY)), event_names),
        "data[FIELDS][ID]": (st.integers(1, BIGINT_LIMIT - 1).map(str), numbers),
        "ts": (st.integers(0, 2**40).map(str), numbers),
        "auth[application_token]": (st.just(APPLICATION_TOKEN), tokens),
        "auth[member_id]": (st.text("0123456789abcdef", min_size=32, max_size=32), member_ids),
        "auth[domain]": (st.just("emu.bitrix24.ru"), st.text(max_size=60)),
    }
    found = []
    for key, (valid, hostile) in fields.items():
        kind = draw(st.sampled_from(["valid", "valid", "valid", "hostile", "missing"]))
        if kind != "missing":
            found.append((key, draw(valid if kind == "valid" else hostile)))
    found += draw(st.lists(st.tuples(keys, values), max_size=8))
    return draw(st.permutations(found))


@st.composite
def bodies(draw: st.DrawFn) -> Body:
    form = draw(pairs())
    content = urlencode(form).encode()
    shape = draw(st.sampled_from(["clean", "spliced", "padded", "many fields", "raw"]))
    if shape == "spliced":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(content)))
            junk = draw(st.one_of(st.sampled_from(JUNK), st.binary(min_size=1, max_size=8)))
            content = content[:at] + junk + content[at:]
    elif shape == "padded":  # around the size limit, or far past it
        target = draw(st.one_of(st.integers(MAX_BODY - 40, MAX_BODY + 40), st.just(1024 * 1024)))
        content += b"&pad=" + b"x" * max(0, target - len(content) - 5)
    elif shape == "many fields":
        count = draw(st.one_of(st.integers(90, 110), st.sampled_from([1000, 5000])))
        content += b"".join(b"&f%d=" % i for i in range(count))
    elif shape == "raw":
        content = draw(st.binary(max_size=300))
    return Body(content, draw(content_types))


# --- the oracle ----------------------------------------------------------------------------------


def _bigint(raw: str) -> int | None:
    return int(raw) if ASCII_ID.fullmatch(raw) and int(raw) < BIGINT_LIMIT else None


@dataclass(frozen=True)
class Expected:
    statuses: frozenset[int]
    form: dict[str, str]  # the form as the receiver should read it (when it can)

    @property
    def entity(self) -> str:
        return EVENT_ENTITY[self.form["event"].strip().upper()]

    @property
    def record_id(self) -> int:
        record_id = _bigint(self.form["data[FIELDS][ID]"])
        assert record_id is not None
        return record_id


def expected(body: Body) -> Expected:
    """Every fault the body has, each with its answer; none: 200."""
    required: set[int] = set()
    possible: set[int] = set()
    kind = body.content_type.lower()
    if FORM not in kind:
        required.add(400)
    elif FORM not in body.content_type:  # media types are case-insensitive (RFC 9110 8.3.1)
        possible.add(400)
    if len(body.content) > MAX_BODY:
        required.add(413)
    try:
        text = body.content.decode("utf-8")
    except UnicodeDecodeError:
        required.add(400)
        return Expected(frozenset(required | possible), {})
    found = parse_qsl(text, keep_blank_values=True)
    if len(found) > MAX_FIELDS:
        required.add(400)
    elif text.count("&") + 1 > MAX_FIELDS:  # empty pieces may count as fields too
        possible.add(400)
    form = dict(found)
    if form.get("auth[application_token]") != APPLICATION_TOKEN:
        required.add(403)
    # The receiver forgives the event name's case and surrounding blanks.
    event = form.get("event", "").strip().upper()
    record_id = _bigint(form.get("data[FIELDS][ID]", ""))
    if event not in EVENT_ENTITY or record_id is None or record_id == 0:
        required.add(400)
    return Expected(frozenset(required | possible if required else possible | {200}), form)


# --- the test ------------------------------------------------------------------------------------


def test_event_receiver_survives_fuzzing_and_stores_only_verified_events(
    database_url: str,
) -> None:
    tally: Counter[str] = Counter()
    started = time.monotonic()
    with asyncio.Runner() as runner, psycopg.connect(database_url, autocommit=True) as db:
        resources = AsyncExitStack()
        stack = runner.run(
            resources.enter_async_context(
                service_stack(database_url, Emulator(webhook_token=TOKEN), worker=False)
            )
        )
        stack.api.headers.pop("Authorization")  # the receiver is public
        rows_seen = 0

        def rows() -> int:
            found = db.execute("SELECT count(*) FROM b24sync.received_events").fetchone()
            assert found is not None
            return int(found[0])

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(body=bodies())
        def receiver_holds(body: Body) -> None:
            nonlocal rows_seen
            note(repr(body))  # the whole body, in the report of a failure
            want = expected(body)
            response: httpx.Response = runner.run(
                stack.api.post(RECEIVER, content=body.content, headers=body.headers)
            )
            now = rows()
            stored, rows_seen = now - rows_seen, now
            tally["bodies"] += 1
            tally[str(response.status_code)] += 1
            if want.form.get("auth[application_token]") != APPLICATION_TOKEN:
                tally["without the token"] += 1
                tally["rows stored without the token"] += stored
            assert response.status_code < 500, response.text
            assert response.status_code in want.statuses, (sorted(want.statuses), response.text)
            if response.status_code != 200:
                assert stored == 0
                return
            assert stored == 1
            row = db.execute(
                "SELECT entity, record_id, member_id, event_ts, (payload - 'member_id')::text "
                "FROM b24sync.received_events WHERE id = %s",
                (response.json()["id"],),
            ).fetchone()
            assert row is not None
            entity, record_id, member_id, event_ts, payload = row
            assert (entity, record_id) == (want.entity, want.record_id)
            assert event_ts == _bigint(want.form.get("ts", ""))
            sent_member = want.form.get("auth[member_id]", "")
            assert member_id in (sent_member, "") and "\x00" not in member_id
            assert len(member_id) <= 64
            if PLAIN_MEMBER_ID.fullmatch(sent_member):
                assert member_id == sent_member
            assert APPLICATION_TOKEN not in payload  # (a member_id may be any short word)

        try:
            receiver_holds()
        finally:
            runner.run(resources.aclose())
    print(f"{dict(tally)} in {time.monotonic() - started:.1f} s")
    # The strategies must keep reaching every answer, or the fuzzing proves little.
    assert all(tally[status] for status in ("200", "400", "403", "413")), tally
    assert tally["rows stored without the token"] == 0
