"""The test-data tool: linked companies and contacts created in batches of 50, and cleared again.

Every record it creates carries ``ORIGINATOR_ID = b24sync-seed`` (a standard CRM field meant for
"the external system this record came from"), so clearing touches only its own records unless
asked for everything. One operation runs at a time across all processes (an advisory lock).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

from b24sync.bitrix.client import MAX_BATCH, BitrixClient, counting_calls
from b24sync.bitrix.encoding import encode_params
from b24sync.bitrix.export import ListMethod, export_records
from b24sync.errors import B24SyncError
from b24sync.store.locks import held_locks, session_lock

ORIGINATOR = "b24sync-seed"
LOCK_KEY = "b24sync.service.testdata"
# The original tool's words first (its README quotes them), then ours.
BUSY_MESSAGE = (
    "busy: Сервис занят, попробуйте позже (another create or clear of test data is running; "
    "try again when it ends)"
)
GENERATED_ONLY_NOTE = (
    "only the companies and contacts this tool created were deleted; all=true deletes every "
    "contact and company of the portal, as the original tool did"
)

ProgressCallback = Callable[[int], None]  # percent done, 0..100


class SeedBusy(B24SyncError):
    """Another test-data operation holds the lock."""


@dataclass
class SeedReport:
    action: str
    companies: int = 0
    contacts: int = 0
    api_calls: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # "contact 17" -> the portal's error
    scope: str | None = None  # a clear's: "generated" (the default) or "all"

    def as_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "action": self.action,
            "companies": self.companies,
            "contacts": self.contacts,
            "api_calls": self.api_calls,
            "failed": self.failed,
        }
        if self.scope is not None:
            answer["scope"] = self.scope
        if self.scope == "generated":
            answer["note"] = GENERATED_ONLY_NOTE
        return answer


@dataclass(frozen=True)
class Command:
    key: str  # co7 or ct12
    method: str
    fields: dict[str, Any]
    company_key: str | None = None  # a contact's company, by command key


def _phone(fake: Faker) -> str:
    return "+79" + fake.numerify("#########")


def creation_plan(companies: int, contacts: int, seed: int | None = None) -> list[Command]:
    """Companies each followed by their contacts (contact j belongs to company j mod N), so a
    contact's company is created in the same batch call or an earlier one."""
    fake = Faker("ru_RU")
    if seed is not None:
        fake.seed_instance(seed)
    members: dict[int, list[int]] = {i: [] for i in range(companies)}
    for j in range(contacts if companies else 0):
        members[j % companies].append(j)
    plan: list[Command] = []
    for i in range(companies):
        plan.append(
            Command(
                f"co{i}",
                "crm.company.add",
                {"TITLE": fake.company(), "ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": f"co{i}"},
            )
        )
        plan.extend(_contact(fake, j, f"co{i}") for j in members[i])
    if not companies:
        plan.extend(_contact(fake, j, None) for j in range(contacts))
    return plan


def _contact(fake: Faker, j: int, company_key: str | None) -> Command:
    male = fake.pybool()
    name = fake.first_name_male() if male else fake.first_name_female()
    last = fake.last_name_male() if male else fake.last_name_female()
    middle = fake.middle_name_male() if male else fake.middle_name_female()
    return Command(
        f"ct{j}",
        "crm.contact.add",
        {
            "NAME": name,
            "LAST_NAME": last,
            "SECOND_NAME": middle,
            "PHONE": [{"VALUE": _phone(fake), "VALUE_TYPE": "WORK"}],
            "ORIGINATOR_ID": ORIGINATOR,
            "ORIGIN_ID": f"ct{j}",
        },
        company_key,
    )


class TestData:
    """Create and clear test data on a portal; ``dsn`` is where the busy lock lives."""

    __test__ = False  # not a pytest class, whatever its name says

    def __init__(self, client: BitrixClient, dsn: str) -> None:
        self.client = client
        self.dsn = dsn

    async def busy(self, conn: Any) -> bool:
        return LOCK_KEY in await held_locks(conn, [LOCK_KEY])

    async def create(
        self, companies: int, contacts: int, on_progress: ProgressCallback | None = None
    ) -> SeedReport:
        async with self._exclusive(), counting_calls() as spent:
            report = await self._create(creation_plan(companies, contacts), on_progress)
        report.api_calls = spent.http_calls
        return report

    async def clear(
        self, *, everything: bool = False, on_progress: ProgressCallback | None = None
    ) -> SeedReport:
        async with self._exclusive(), counting_calls() as spent:
            report = await self._clear(everything, on_progress)
        report.api_calls = spent.http_calls
        return report

    async def listing(self, limit: int = 500) -> dict[str, Any]:
        """The generated companies with their member contacts, and the contacts, from the portal:
        the first ``limit`` of each, and how many there are in all."""
        companies = await self._list("crm.company.list", ["ID", "TITLE"])
        contacts = await self._list(
            "crm.contact.list", ["ID", "NAME", "LAST_NAME", "SECOND_NAME", "PHONE", "COMPANY_ID"]
        )
        by_company: dict[str, list[dict[str, Any]]] = {}
        for contact in contacts:
            by_company.setdefault(str(contact.get("COMPANY_ID") or ""), []).append(contact)
        return {
            "companies": [
                c | {"contacts": by_company.get(str(c["ID"]), [])} for c in companies[:limit]
            ],
            "contacts": contacts[:limit],
            "companies_total": len(companies),
            "contacts_total": len(contacts),
        }

    # --- internals -----------------------------------------------------------------------------

    def _exclusive(self) -> AbstractAsyncContextManager[None]:
        return session_lock(self.dsn, LOCK_KEY, busy=SeedBusy(BUSY_MESSAGE))

    async def _create(
        self, plan: list[Command], on_progress: ProgressCallback | None
    ) -> SeedReport:
        report = SeedReport("create")
        created: dict[str, int] = {}
        for offset in range(0, len(plan), MAX_BATCH):
            chunk = plan[offset : offset + MAX_BATCH]
            in_chunk = {c.key for c in chunk}
            commands = {}
            for command in chunk:
                fields = dict(command.fields)
                if command.company_key is not None:
                    if command.company_key in in_chunk:
                        fields["COMPANY_ID"] = f"$result[{command.company_key}]"
                    elif command.company_key in created:
                        fields["COMPANY_ID"] = created[command.company_key]
                commands[command.key] = f"{command.method}?" + encode_params({"fields": fields})
            result = await self.client.batch(commands)
            for key, value in result.result.items():
                if isinstance(value, int) or str(value).isdigit():
                    created[key] = int(value)
            for key, error in result.errors.items():
                report.failed[_label(key)] = _error_text(error)
            _report_progress(on_progress, offset + len(chunk), len(plan))
        report.companies = sum(1 for k in created if k.startswith("co"))
        report.contacts = sum(1 for k in created if k.startswith("ct"))
        return report

    async def _clear(self, everything: bool, on_progress: ProgressCallback | None) -> SeedReport:
        report = SeedReport("clear", scope="all" if everything else "generated")
        contact_ids = await self._ids("crm.contact.list", everything)
        company_ids = await self._ids("crm.company.list", everything)
        total = len(contact_ids) + len(company_ids)
        done = 0
        for kind, ids in (("contact", contact_ids), ("company", company_ids)):  # contacts first
            for offset in range(0, len(ids), MAX_BATCH):
                chunk = ids[offset : offset + MAX_BATCH]
                result = await self.client.batch(
                    {f"{kind}{i}": f"crm.{kind}.delete?id={i}" for i in chunk}
                )
                for key, error in result.errors.items():
                    report.failed[f"{kind} {key.removeprefix(kind)}"] = _error_text(error)
                deleted = len(chunk) - len(result.errors)
                if kind == "contact":
                    report.contacts += deleted
                else:
                    report.companies += deleted
                done += len(chunk)
                _report_progress(on_progress, done, total)
        if not total:
            _report_progress(on_progress, 1, 1)
        return report

    async def _ids(self, method: str, everything: bool) -> list[int]:
        filter_ = {} if everything else {"ORIGINATOR_ID": ORIGINATOR}
        ids: list[int] = []
        async for page in export_records(
            self.client, ListMethod(method), select=["ID"], filter=filter_
        ):
            ids.extend(int(r["ID"]) for r in page.records)
        return ids

    async def _list(self, method: str, select: list[str]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        async for page in export_records(
            self.client, ListMethod(method), select=select, filter={"ORIGINATOR_ID": ORIGINATOR}
        ):
            records.extend(page.records)
        records.sort(key=lambda r: int(r["ID"]))
        return records


def _label(key: str) -> str:
    return ("company " if key.startswith("co") else "contact ") + key[2:]


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("error_description") or error.get("error") or error)
    return str(error)


def _report_progress(on_progress: ProgressCallback | None, done: int, total: int) -> None:
    if on_progress is not None:
        on_progress(min(100, round(100 * done / total)) if total else 100)
