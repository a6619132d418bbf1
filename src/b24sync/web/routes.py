"""Dashboard pages. Each reads through the service and renders; actions go to the JSON API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from b24sync.api.auth import COOKIE_NAME, Authenticator, NotAuthenticated
from b24sync.api.deps import bearer_token, service_of
from b24sync.errors import UnknownEntity, UnknownRun
from b24sync.redaction import redact
from b24sync.store.overview import column_map
from b24sync.store.runs import RunMode, RunStatus
from b24sync.streams import STREAMS, Kind, stream_named
from b24sync.web.i18n import LANGUAGE_COOKIE, LANGUAGES, pick_language, stream_title, translator

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
PAGES = ("overview", "runs", "schedules", "events", "schema", "testdata")
CHART_RUNS = 30
RUNS_PER_PAGE = 50
SYNC_TYPES = [m for m in RunMode if m is not RunMode.BY_IDS]  # the runs page without events


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.astimezone(UTC)


def _utc(value: datetime | str | None) -> str:
    """``2026-11-26 09:41:07 UTC``: the one way pages write a moment (JS adds "5 min ago")."""
    stamp = _as_datetime(value)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC") if stamp else "—"


def _iso(value: datetime | str | None) -> str:
    stamp = _as_datetime(value)
    return stamp.isoformat() if stamp else ""


def _seconds(run: dict[str, Any]) -> float | None:
    started, finished = _as_datetime(run.get("started_at")), _as_datetime(run.get("finished_at"))
    return (finished - started).total_seconds() if started and finished else None


templates.env.filters.update(utc=_utc, iso=_iso)
templates.env.globals.update(seconds=_seconds)


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


def _render(request: Request, page: str, nav: str | None = None, **context: Any) -> Response:
    """Render ``page``; ``nav`` is the menu entry it belongs to (itself when None)."""
    language = _language(request)
    service = service_of(request)
    response = templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "page": page,
            "nav": nav or page,
            "pages": PAGES,
            "t": translator(language),
            "lang": language,
            "languages": LANGUAGES,
            "portal": service.client.auth.masked,
            "title": lambda name: stream_title(name, language),
            "demo": service.settings.demo_portal,
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

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        service = service_of(request)
        bi_url = service.settings.bi_database_url
        return _render(
            request,
            "overview",
            groups=_grouped(await service.status()),
            bi_url=redact(bi_url.get_secret_value()) if bi_url else None,
            live_labels=_live_labels(translator(_language(request))),
        )

    @router.get("/runs", response_class=HTMLResponse)
    async def runs(
        request: Request,
        entity: str = "",
        status: str = "",
        sync_type: str = "",
        events: bool = False,
        page: int = 0,
    ) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        entity_filter = entity if entity in STREAMS else None
        status_filter = status if status in set(RunStatus) else None
        type_filter = sync_type if sync_type in set(RunMode) else ""
        types = [type_filter] if type_filter else (None if events else SYNC_TYPES)
        page = max(0, min(page, 100_000))
        found, total = await service_of(request).runs(
            limit=RUNS_PER_PAGE,
            offset=page * RUNS_PER_PAGE,
            entity=entity_filter,
            status=status_filter,
            sync_types=types,
        )
        filters = {"entity": entity_filter or "", "status": status_filter or ""}
        filters |= {"sync_type": type_filter, "events": "1" if events else ""}
        return _render(
            request,
            "runs",
            runs=found,
            total=total,
            chart=_chart(found[:CHART_RUNS]),
            filters=filters,
            query=urlencode({k: v for k, v in filters.items() if v}),
            page_number=page,
            pages_total=max(1, -(-total // RUNS_PER_PAGE)),
            entities=list(STREAMS),
            statuses=list(RunStatus),
            sync_types=list(RunMode),
        )

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_detail(request: Request, run_id: int) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        try:
            run = await service_of(request).run(run_id)
        except UnknownRun:
            return RedirectResponse("/runs", status_code=303)
        took = _seconds(run)
        rate = run["fetched"] / took if took and run["fetched"] else None
        return _render(request, "run", nav="runs", run=run, took=took, rate=rate)

    @router.get("/schedules", response_class=HTMLResponse)
    async def schedules(request: Request) -> Response:
        if not await _signed_in(request):
            return RedirectResponse("/login", status_code=303)
        return _render(request, "schedules", groups=_grouped(await service_of(request).status()))

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
        declared = [
            {"column": c.column, "pg_type": "", "field": c.field, "bitrix_type": c.bitrix_type}
            for c in chosen.columns
        ]
        columns = declared or await column_map(service_of(request).database_url, chosen)
        return _render(
            request,
            "schema",
            columns=columns,
            declared=bool(declared),
            entity=chosen,
            entities=list(STREAMS),
        )

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


def _live_labels(t: dict[str, str]) -> dict[str, Any]:
    """The words the overview's live view writes, in the page's language."""

    def prefixed(prefix: str) -> dict[str, str]:
        return {k.removeprefix(prefix): v for k, v in t.items() if k.startswith(prefix)}

    return {
        "state": prefixed("state_"),
        "status": prefixed("status_"),
        "mode": prefixed("mode_"),
        "records": t["records"],
        "starting": t["starting"],
        "error": t["last_error"],
    }


def _grouped(streams: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The overview's sections: streams by kind, in the order Kind declares them."""
    order = {str(kind): n for n, kind in enumerate(Kind)}
    kinds = sorted({s["kind"] for s in streams}, key=lambda k: order.get(k, len(order)))
    return [(kind, [s for s in streams if s["kind"] == kind]) for kind in kinds]


# The chart's drawing area inside its SVG: room for the axes' labels left, right and below.
CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_RIGHT, CHART_BOTTOM = 640, 170, 56, 48, 22


def _chart(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Records (bars, left axis) and seconds (line, right axis) of runs, oldest first, with
    the run numbers below: the numbers an inline SVG needs."""
    ordered = list(reversed(runs))
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    top = 24  # room for the axes' titles above the plot
    plot_height = CHART_HEIGHT - CHART_BOTTOM - top
    step = plot_width / max(1, len(ordered))
    most_records = max([r["fetched"] or 0 for r in ordered] + [1])
    seconds = [_seconds(r) or 0.0 for r in ordered]
    longest = max([*seconds, 0.001])

    def y(share: float) -> float:
        return round(top + plot_height * (1 - share), 1)

    bars = [
        {
            "x": round(CHART_LEFT + i * step + 1, 1),
            "y": y((r["fetched"] or 0) / most_records),
            "w": round(max(step - 2, 1), 1),
            "h": round(plot_height * (r["fetched"] or 0) / most_records, 1),
            "title": f"#{r['id']} {r['entity']} {r['sync_type']}: {r['fetched']} / {s:.1f} s",
        }
        for i, (r, s) in enumerate(zip(ordered, seconds, strict=True))
    ]
    line = " ".join(
        f"{round(CHART_LEFT + i * step + step / 2, 1)},{y(s / longest)}"
        for i, s in enumerate(seconds)
    )
    ticks = [
        {
            "y": y(share),
            "records": f"{most_records * share:,.0f}",
            "seconds": f"{longest * share:.1f}",
        }
        for share in (0, 0.5, 1)
    ]
    labels = [
        {"x": round(CHART_LEFT + i * step + step / 2, 1), "text": f"#{ordered[i]['id']}"}
        for i in sorted({0, len(ordered) // 2, len(ordered) - 1})
        if ordered
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "bottom": top + plot_height,
        "bars": bars,
        "line": line,
        "ticks": ticks,
        "labels": labels,
    }
