"""The test-data tool's routes, kept as the second seed wrote them (DESIGN.md)."""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse

from b24sync.api import schemas
from b24sync.api.auth import Authenticator, NotAuthenticated, Principal
from b24sync.api.deps import bearer_token, service_of
from b24sync.errors import B24SyncError
from b24sync.service.testdata import BUSY_MESSAGE, ProgressCallback, SeedBusy, SeedReport

Count = Annotated[int, Query(ge=1, le=5000, description="companies and contacts to create")]
Everything = Annotated[
    bool, Query(alias="all", description="delete every contact and company, not only generated")
]


async def user_or_seed_secret(request: Request, secret: str | None = None) -> Principal:
    """Bearer auth, or the seed's ``secret`` parameter when BITRIX_WEBHOOK_SECRET is set."""
    configured = service_of(request).settings.bitrix_webhook_secret
    if secret is not None and configured is not None:
        if hmac.compare_digest(secret.encode(), configured.get_secret_value().encode()):
            return Principal("seed-secret", "secret")
        raise NotAuthenticated("the secret parameter does not match BITRIX_WEBHOOK_SECRET")
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(bearer_token(request))


Caller = Annotated[Principal, Depends(user_or_seed_secret)]


def testdata_router() -> APIRouter:
    router = APIRouter(tags=["test data"])

    @router.get("/bitrix/status")
    async def seed_status(request: Request, _: Caller) -> schemas.SeedBusyState:
        return schemas.SeedBusyState(busy=await service_of(request).test_data_busy())

    @router.post("/bitrix/webhook/push-to-bitrix", response_model=schemas.SeedResult)
    async def push(request: Request, _: Caller, count: Count = 100) -> dict[str, Any]:
        report = await service_of(request).test_data().create(count, count)
        return report.as_json()

    @router.post("/bitrix/clear-bitrix", response_model=schemas.SeedResult)
    async def clear(request: Request, _: Caller, everything: Everything = False) -> dict[str, Any]:
        report = await service_of(request).test_data().clear(everything=everything)
        return report.as_json()

    @router.get(
        "/bitrix/webhook/push-stream",
        response_class=EventSourceResponse,
        responses=schemas.event_stream(
            "`message` events with the progress of a create in %, then `done`"
        ),
    )
    async def push_stream(request: Request, _: Caller, count: Count = 100) -> EventSourceResponse:
        tool = await _idle_tool(request)
        return EventSourceResponse(_progress(lambda p: tool.create(count, count, p)))

    @router.get(
        "/bitrix/clear-stream",
        response_class=EventSourceResponse,
        responses=schemas.event_stream(
            "`message` events with the progress of a clear in %, then `done`"
        ),
    )
    async def clear_stream(
        request: Request, _: Caller, everything: Everything = False
    ) -> EventSourceResponse:
        tool = await _idle_tool(request)
        return EventSourceResponse(
            _progress(lambda p: tool.clear(everything=everything, on_progress=p))
        )

    @router.get("/api/v1/testdata", response_model=schemas.TestDataListing)
    async def listing(request: Request, _: Caller) -> dict[str, Any]:
        """Generated companies with their member contacts, and the contacts, from the portal."""
        return await service_of(request).test_data().listing()

    return router


async def _idle_tool(request: Request) -> Any:
    """Refuse with 409 before the stream starts when an operation is running already."""
    service = service_of(request)
    if await service.test_data_busy():
        raise SeedBusy(BUSY_MESSAGE)
    return service.test_data()


async def _progress(
    operation: Callable[[ProgressCallback], Coroutine[Any, Any, SeedReport]],
) -> AsyncIterator[dict[str, str]]:
    """Percentages as ``message`` events while batch calls return, then ``done`` (or ``error``).

    The operation runs in its own task: a closed browser tab does not stop it half-way.
    """
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    task = asyncio.create_task(operation(queue.put_nowait))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    last = -1
    while (percent := await queue.get()) is not None:
        if percent != last:
            last = percent
            yield {"event": "message", "data": str(percent)}
    try:
        report = task.result()
    except B24SyncError as exc:
        yield {"event": "error", "data": str(exc)}
        return
    yield {"event": "done", "data": json.dumps(report.as_json(), ensure_ascii=False)}
