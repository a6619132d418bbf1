"""Dashboard pages. Each reads through the service and renders; actions go to the JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from b24sync.api.auth import COOKIE_NAME, Authenticator, NotAuthenticated
from b24sync.api.deps import bearer_token, service_of
from b24sync.errors import UnknownEntity
from b24sync.store.overview import column_map
from b24sync.store.runs import RunStatus
from b24sync.streams import STREAMS, stream_named
from b24sync.web.i18n import LANGUAGE_COOKIE, LANGUAGES, pick_language, translator

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
PAGES = ("overview", "runs", "schedules", "events", "schema", "testdata")
CHART_RUNS = 30


def mount_static(app: Any) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")


def _language(request: Request) -> str:
    return pick_language(
        request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )


def _login_page(request: Request, *, failed: bool) -> Response:
    authenticator: Authenticator = request.app.state.authenticator
    return _render(request, "login", failed=failed, password_login=authenticator.password_login)


def _render(request: Request, page: str, **context: Any) -> Response:
    language = _language(request)
    service = service_of(request)
    response = templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "pages": PAGES,
            "t": translator(language),
            "lang": language,
            "languages": LANGUAGES,
            "portal": service.client.auth.masked,
            **context,
        },
    )
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, language, samesite="strict")
    return response


async def _signed_in(request: Request) -> bool:
    authenticator: Authenticator = request.app.state.authenticator
    try:
        await authenticator.authenticate(bearer_token(request))
    except NotAuthenticated:
        return False
    return True


def web_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        return _login_page(request, failed=False)

    @router.post("/login")
    async def login(
        request: Request, token: str = Form(""), email: str = Form(""), password: str = Form("")
    ) -> Response:
        authenticator: Authenticator = request.app.state.authenticator
        try:
            if email and password:
                token = await authenticator.log_in(email.strip(), password)
            else:
                await authenticator.authenticate(token.strip())
        except NotAuthenticated:
            response = _login_page(request, failed=True)
            response.status_code = 401
            return response
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE_NAME, token.strip(), httponly=True, samesite="strict")
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME)
        return response

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        return _render(request, "overview", entities=await service_of(request).status())

    @router.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request, entity: str = "", status: str = "") -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        entity_filter = entity if entity in STREAMS else None
        found, total = await service_of(request).runs(
            limit=100, offset=0, entity=entity_filter, status=status or None
        )
        return _render(
            request,
            "runs",
            runs=found,
            total=total,
            chart=_chart(found[:CHART_RUNS]),
            entity=entity_filter or "",
            status=status,
            entities=list(STREAMS),
            statuses=list(RunStatus),
        )

    @router.get("/schedules", response_class=HTMLResponse)
    async def schedules(request: Request) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        return _render(request, "schedules", schedules=await service_of(request).schedules())

    @router.get("/events", response_class=HTMLResponse)
    async def events(request: Request) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        info = await service_of(request).events.registered()
        return _render(request, "events", info=info, base_url=str(request.base_url).rstrip("/"))

    @router.get("/schema", response_class=HTMLResponse)
    async def schema(request: Request, entity: str = "deal") -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        try:
            chosen = stream_named(entity)
        except UnknownEntity:
            chosen = STREAMS["deal"]
        columns = await column_map(service_of(request).database_url, chosen)
        return _render(request, "schema", columns=columns, entity=chosen, entities=list(STREAMS))

    @router.get("/testdata", response_class=HTMLResponse)
    async def testdata(request: Request) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        service = service_of(request)
        return _render(
            request,
            "testdata",
            listing=await service.test_data().listing(),
            busy=await service.test_data_busy(),
        )

    return router


def _chart(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Bar heights (records) and a polyline (seconds) for an inline SVG, oldest run first."""
    ordered = list(reversed(runs))
    width, height = 600, 120
    step = width / max(1, len(ordered))
    most_records = max([r["fetched"] or 0 for r in ordered] + [1])
    seconds = [
        (r["finished_at"] - r["started_at"]).total_seconds() if r["finished_at"] else 0.0
        for r in ordered
    ]
    longest = max([*seconds, 0.001])
    bars = [
        {
            "x": round(i * step + 2, 1),
            "w": round(max(step - 4, 1), 1),
            "h": round(height * (r["fetched"] or 0) / most_records, 1),
            "title": f"#{r['id']} {r['entity']} {r['sync_type']}: {r['fetched']} records, {s:.1f} s",
        }
        for i, (r, s) in enumerate(zip(ordered, seconds, strict=True))
    ]
    line = " ".join(
        f"{round(i * step + step / 2, 1)},{round(height - height * s / longest, 1)}"
        for i, s in enumerate(seconds)
    )
    return {"width": width, "height": height, "bars": bars, "line": line}
