"""What each route answers: the OpenAPI document's response schemas.

Timestamps are ``datetime`` fields, so every route writes them the same way (ISO 8601, UTC,
``Z``). Answers whose details belong to another layer (a run's error text, a binding's result)
keep their documented fields and allow more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from b24sync.store.runs import RunMode, RunStatus
from b24sync.streams import Kind

# A moment in UTC, whatever time zone the database session had: every answer writes it one way.
UtcTime = Annotated[datetime, AfterValidator(lambda moment: moment.astimezone(UTC))]


def event_stream(description: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that answers Server-Sent Events."""
    return {200: {"content": {"text/event-stream": {}}, "description": description}}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class DatabaseHealth(BaseModel):
    ok: bool
    error: str | None = Field(description="the kind of failure, when not ok")


class PortalHealth(BaseModel):
    ok: bool
    auth: str = Field(description="inbound_webhook or application")
    url: str = Field(description="the portal address, its secret masked")
    error: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: DatabaseHealth
    portal: PortalHealth


class RunQueued(BaseModel):
    run_id: int
    entity: str
    sync_type: str
    status: Literal["queued"]


class _RunFigures(_Open):
    id: int
    sync_type: RunMode = Field(description="by_ids: a batch of events")
    status: RunStatus
    started_at: UtcTime | None
    finished_at: UtcTime | None
    fetched: int | None
    upserted: int | None
    deleted: int | None
    api_calls: int | None
    error: str | None


class Run(_RunFigures):
    """One row of the run log (the original service's ``sync_logs``)."""

    entity: str


class RunDetail(Run):
    log: str | None = Field(default=None, description="the lines the run logged, one a line")


class RunsPage(BaseModel):
    runs: list[Run]
    total: int = Field(description="runs matching the filters in all")
    limit: int
    offset: int


class Schedule(BaseModel):
    enabled: bool
    interval_minutes: int
    webhook_enabled: bool


class FlatSchedule(BaseModel):
    """One stream's schedule in the original service's form."""

    entity_type: str
    enabled: bool
    sync_interval_minutes: int
    webhook_enabled: bool

    @classmethod
    def of(cls, entity: str, schedule: Schedule) -> FlatSchedule:
        return cls(
            entity_type=entity,
            enabled=schedule.enabled,
            sync_interval_minutes=schedule.interval_minutes,
            webhook_enabled=schedule.webhook_enabled,
        )


class LastRun(_RunFigures):
    seconds: float | None = None


class LiveRun(Run):
    estimated_total: int | None = None
    commands: int | None = None


class LiveSnapshot(BaseModel):
    """One ``runs`` event of /api/v1/sync/events."""

    running: list[str] = Field(description="streams a sync or an event batch holds now")
    runs: list[LiveRun] = Field(description="runs queued or running, and the latest finished")
    events_pending: int
    last_event_at: UtcTime | None


class StreamStatus(_Open):
    entity: str
    kind: Kind
    table: str
    rows: int
    deleted_rows: int
    state: str = Field(
        description="idle, queued, running, disabled, or gone (a smart process the portal no "
        "longer has: its table is kept)"
    )
    last_run: LastRun | None
    cursor: dict[str, Any] | None = Field(description="where the next incremental run starts")
    schedule: Schedule
    next_run_at: UtcTime | None
    full_sync_calls: int | None = Field(
        default=None, description="per-parent streams: API calls a full sync will take"
    )
    gone_at: UtcTime | None = Field(
        default=None, description="when the portal no longer listed this smart process"
    )


class SyncStatus(BaseModel):
    entities: list[StreamStatus]


class EventsInfo(_Open):
    """How events reach the service: the mode, the bindings, the inbox."""

    auth: str
    can_bind: bool
    application_token_set: bool
    handler_path: str
    events: list[str]
    bindings: list[dict[str, Any]]
    bindings_error: str | None
    last_event_name: str | None
    last_event_at: UtcTime | None
    events_pending: int


class BindingResult(_Open):
    method: str
    mode: str
    handler: str | None
    events: list[str] = Field(description="the events bound or unbound")
    failed: dict[str, str] = Field(description="event -> the portal's reason")


class EventAccepted(BaseModel):
    accepted: bool
    id: int | None = Field(description="the inbox row; null for an event that is ignored")


class Installed(_Open):
    installed: bool
    portal: str
    member_id: str


class SeedBusyState(BaseModel):
    busy: bool


class SeedResult(_Open):
    action: str
    companies: int
    contacts: int
    api_calls: int
    failed: dict[str, str]


class TestDataListing(BaseModel):
    companies: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    companies_total: int
    contacts_total: int
