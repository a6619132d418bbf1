"""Routes of the public contract (DESIGN.md) over the service; errors become 4xx with a message."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from sse_starlette.sse import EventSourceResponse

from b24sync.api import schemas
from b24sync.api.auth import Authenticator, NotAuthenticated, Principal
from b24sync.api.deps import bearer_token
from b24sync.api.docs import mount_docs
from b24sync.api.metrics import render_metrics
from b24sync.api.testdata import testdata_router
from b24sync.errors import (
    BitrixError,
    ConfigurationError,
    EventsUnavailable,
    EventTooLarge,
    ForbiddenEvent,
    InstallRefused,
    MalformedEvent,
    SyncAlreadyRunning,
    TooManyInstallAttempts,
    UnknownEntity,
    UnknownRun,
    UnsafeHandlerUrl,
)
from b24sync.service import SyncService
from b24sync.service.testdata import SeedBusy
from b24sync.store.runs import RunMode, RunStatus
from b24sync.streams import ITEM_NAME_PATTERN, STREAMS, is_stream_name
from b24sync.web.routes import mount_static, web_router


def _known_stream(name: str) -> str:
    if not is_stream_name(name):
        raise ValueError(f"unknown stream {name[:60]!r}: use one of {', '.join(STREAMS)}")
    return name


# Any stream of the registry; the OpenAPI document lists the declared ones, and a smart process's
# item_<entityTypeId> (discovered on the portal; the service answers 422 for one it does not have).
EntityName = Annotated[
    str,
    AfterValidator(_known_stream),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(STREAMS)},
                {"type": "string", "pattern": ITEM_NAME_PATTERN},
            ]
        }
    ),
]
SSE_POLL_SECONDS = 1.0
# A CRM event is a few hundred bytes and ONAPPINSTALL under 2 KB; the receiver is public.
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 100

# exception class -> HTTP status; every one is answered {"detail": message}
ERROR_STATUS: dict[type[Exception], int] = {
    NotAuthenticated: 401,
    ForbiddenEvent: 403,
    InstallRefused: 403,
    TooManyInstallAttempts: 429,
    MalformedEvent: 400,
    EventTooLarge: 413,
    SyncAlreadyRunning: 409,
    EventsUnavailable: 409,
    UnknownEntity: 422,
    UnknownRun: 404,
    UnsafeHandlerUrl: 422,
    SeedBusy: 409,
    ConfigurationError: 409,  # the service is not set up for what was asked
    BitrixError: 502,  # the portal (or its OAuth server) refused or failed: say why
}


class StartSync(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sync_type: Literal["full", "incremental", "reconcile"] = "incremental"


Interval = Field(default=None, ge=1, le=10080)


class SchedulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    interval_minutes: int | None = Interval
    webhook_enabled: bool | None = None


class EntityConfig(BaseModel):
    """One entity's settings in the original service's flat form (its README's example)."""

    model_config = ConfigDict(extra="forbid")
    entity_type: EntityName
    enabled: bool | None = None
    sync_interval_minutes: int | None = Interval
    webhook_enabled: bool | None = None

    def patch(self) -> SchedulePatch:
        return SchedulePatch(
            enabled=self.enabled,
            interval_minutes=self.sync_interval_minutes,
            webhook_enabled=self.webhook_enabled,
        )


def _patch_values(patch: SchedulePatch) -> dict[str, Any]:
    return patch.model_dump(exclude_none=True)


# Documents what bearer_token() reads (an API key or a Supabase JWT): the Authorize button.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="an API key (API_KEYS, or the admin key `b24sync run` prints) or a Supabase JWT",
)


async def require_user(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
) -> Principal:
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(bearer_token(request))


User = Annotated[Principal, Depends(require_user)]


def create_app(service: SyncService) -> FastAPI:
    authenticator = Authenticator(service.settings)
    app = FastAPI(
        title="b24sync",
        summary="A PostgreSQL copy of a Bitrix24 CRM, kept current.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.authenticator = authenticator

    for exc_class, status in ERROR_STATUS.items():
        app.add_exception_handler(exc_class, _error_handler(status))
    app.add_exception_handler(RequestValidationError, _invalid_request)

    metrics_dependencies = [] if service.settings.metrics_public else [Depends(require_user)]

    @app.get(
        "/health",
        tags=["service"],
        response_model=schemas.Health,
        responses={503: {"model": schemas.Health, "description": "the database is unreachable"}},
    )
    async def health() -> JSONResponse:
        report = schemas.Health.model_validate(await service.health())
        status = 200 if report.database.ok else 503
        return JSONResponse(report.model_dump(mode="json"), status_code=status)

    @app.get(
        "/metrics",
        tags=["service"],
        dependencies=metrics_dependencies,
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    async def metrics() -> Response:
        body, content_type = render_metrics(await service.metrics_snapshot())
        return Response(body, media_type=content_type)

    api = APIRouter(prefix="/api/v1")

    @api.post("/sync/start/{entity}", status_code=202, tags=["sync"])
    async def start_sync(entity: EntityName, body: StartSync, _: User) -> schemas.RunQueued:
        run_id = await service.request_sync(entity, body.sync_type)
        return schemas.RunQueued(
            run_id=run_id, entity=entity, sync_type=body.sync_type, status="queued"
        )

    @api.get("/sync/status", tags=["sync"])
    async def sync_status(_: User) -> schemas.SyncStatus:
        return schemas.SyncStatus.model_validate({"entities": await service.status()})

    @api.get("/sync/runs", tags=["sync"])
    async def sync_runs(
        _: User,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        entity: EntityName | None = None,
        status: RunStatus | None = None,
        sync_type: Annotated[
            list[RunMode] | None, Query(description="keep these types (repeat the parameter)")
        ] = None,
    ) -> schemas.RunsPage:
        found, total = await service.runs(
            limit=limit, offset=offset, entity=entity, status=status, sync_types=sync_type
        )
        return schemas.RunsPage.model_validate(
            {"runs": found, "total": total, "limit": limit, "offset": offset}
        )

    @api.get("/sync/runs/{run_id}", tags=["sync"], responses={404: {"description": "no such run"}})
    async def sync_run(
        run_id: Annotated[int, Path(ge=1, le=2**63 - 1)], _: User
    ) -> schemas.RunDetail:
        return schemas.RunDetail.model_validate(await service.run(run_id))

    @api.get("/sync/config", tags=["sync"])
    async def get_config(_: User) -> dict[str, schemas.Schedule]:
        return {
            name: schemas.Schedule(**s.as_json()) for name, s in (await service.schedules()).items()
        }

    @api.put(
        "/sync/config",
        tags=["sync"],
        response_model=schemas.FlatSchedule | dict[str, schemas.Schedule],
    )
    async def put_config(
        changes: EntityConfig | dict[EntityName, SchedulePatch], _: User
    ) -> dict[str, Any]:
        """Change schedules: ``{entity: {enabled?, interval_minutes?, webhook_enabled?}}``, or
        one entity's flat form ``{entity_type, enabled?, sync_interval_minutes?,
        webhook_enabled?}``, which is answered in the same form."""
        if isinstance(changes, EntityConfig):
            name = changes.entity_type
            updated = await service.update_schedules({name: _patch_values(changes.patch())})
            flat = schemas.FlatSchedule.of(name, schemas.Schedule(**updated[name].as_json()))
            return flat.model_dump()
        updated = await service.update_schedules(
            {name: _patch_values(patch) for name, patch in changes.items()}
        )
        return {name: s.as_json() for name, s in updated.items()}

    @api.get(
        "/sync/events",
        tags=["sync"],
        response_class=EventSourceResponse,
        responses=schemas.event_stream("`runs` events: the live run log, sent on every change"),
    )
    async def sync_events(request: Request, _: User) -> EventSourceResponse:
        return EventSourceResponse(_live_updates(request, service.live_snapshot))

    @api.post("/webhooks/register", tags=["events"], response_model=schemas.BindingResult)
    async def register(
        _: User, handler_base_url: str | None = None, offline: bool = False
    ) -> dict[str, Any]:
        """Bind the CRM events (local application only): online to handler_base_url, or
        offline=true for the drain task."""
        return await service.events.register(handler_base_url, offline=offline)

    @api.delete("/webhooks/unregister", tags=["events"], response_model=schemas.BindingResult)
    async def unregister(
        _: User, handler_base_url: str | None = None, offline: bool = False
    ) -> dict[str, Any]:
        return await service.events.unregister(handler_base_url, offline=offline)

    @api.get("/webhooks/registered", tags=["events"], response_model=schemas.EventsInfo)
    async def registered(_: User) -> dict[str, Any]:
        return await service.events.registered()

    @api.post("/webhooks/bitrix", tags=["events"])
    async def receive(request: Request) -> schemas.EventAccepted:
        """The event receiver: Bitrix24 POSTs form-encoded events here."""
        form = await _form(request)
        event_id = await service.events.receive(form)
        return schemas.EventAccepted(accepted=True, id=event_id)

    @api.post("/app/install", tags=["events"], response_model=schemas.Installed)
    async def install(request: Request) -> dict[str, Any]:
        """The local application's installation path: the portal POSTs its tokens here."""
        return await service.app.install(await _form(request))

    @api.get("/app/connect", tags=["events"], response_class=RedirectResponse, status_code=303)
    async def connect(_: User) -> RedirectResponse:
        """Send the browser to the portal to authorize the local application."""
        return RedirectResponse(service.app.authorize_url(), status_code=303)

    @api.get("/app/oauth", tags=["events"], response_class=RedirectResponse, status_code=303)
    async def oauth_return(code: str, state: str) -> RedirectResponse:
        """The local application's address: the portal sends the browser back here."""
        await service.app.complete_authorization(code, state)
        return RedirectResponse("/events", status_code=303)

    app.include_router(api)
    app.include_router(testdata_router())
    app.include_router(web_router())
    mount_static(app)
    mount_docs(app)
    return app


async def _form(request: Request) -> dict[str, str]:
    """A form the portal POSTs (an event, an installation), read within fixed bounds."""
    content_type = request.headers.get("content-type", "").lower()
    if "application/x-www-form-urlencoded" not in content_type:
        raise MalformedEvent("send the event form-encoded (application/x-www-form-urlencoded)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise EventTooLarge(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        raise MalformedEvent("the form is not UTF-8") from None
    except ValueError:
        raise MalformedEvent(f"the form has more than {MAX_FORM_FIELDS} fields") from None
    return dict(pairs)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """422 with what was wrong, never echoing the input: FastAPI's own handler fails (500) on a
    body that is not UTF-8, and echoed input can be large or hostile."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _error_handler(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    return handle


async def _live_updates(
    request: Request, snapshot: Callable[[], Awaitable[dict[str, Any]]]
) -> AsyncIterator[dict[str, str]]:
    """Poll the run log (shared by every process) and send each change as an SSE event."""
    last = ""
    while not await request.is_disconnected():
        current = schemas.LiveSnapshot.model_validate(await snapshot()).model_dump_json()
        if current != last:
            last = current
            yield {"event": "runs", "data": current}
        await asyncio.sleep(SSE_POLL_SECONDS)
