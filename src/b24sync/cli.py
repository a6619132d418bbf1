"""The `b24sync` command line: a thin shell over the services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import typer
from psycopg import AsyncConnection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from b24sync.config import Settings, load_settings, stored_secret, with_overrides
from b24sync.errors import (
    B24SyncError,
    ConfigurationError,
    EventsUnavailable,
    PortalAuthError,
    SyncAlreadyRunning,
    UnknownEntity,
    UnsafeHandlerUrl,
)
from b24sync.logs import configure_logging
from b24sync.redaction import redact
from b24sync.runtime import portal_client, sync_engine, sync_service
from b24sync.service import SyncService
from b24sync.service.events import HANDLER_PATH
from b24sync.service.testdata import SeedBusy, SeedReport, TestData
from b24sync.store.database import DatabaseLocation, libpq_url
from b24sync.store.migrate import migrate
from b24sync.store.overview import column_map, entity_status
from b24sync.store.runs import RunStatus
from b24sync.streams import STREAMS, Kind, Stream, stream_named, streams_of
from b24sync.sync.engine import Progress as SyncProgress
from b24sync.sync.engine import SyncSummary

app = typer.Typer(
    help="Keep a PostgreSQL copy of a Bitrix24 CRM current.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # docstring paragraphs wrap to the terminal
)
webhooks_app = typer.Typer(help="Register the service's event handler with the portal.")
seed_app = typer.Typer(
    help="Fill the portal with linked test companies and contacts, or clear them."
)
db_app = typer.Typer(help="The service's own tables.")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(seed_app, name="seed")
app.add_typer(db_app, name="db")

console = Console(stderr=True)
STREAM_HELP = "a stream: " + ", ".join(STREAMS)
OBJECT_HELP = "an object stream: " + ", ".join(s.name for s in streams_of(Kind.OBJECT))


def _settings() -> Settings:
    try:
        settings = load_settings()
    except (ConfigurationError, ValueError) as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.debug)
    return settings


def _entity(name: str) -> Stream:
    try:
        return stream_named(name)
    except UnknownEntity as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


async def _sync_with_progress(
    settings: Settings, url: str, entity: Stream, mode: str
) -> SyncSummary:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{entity.name} {mode}", total=None)

        def show(progress: SyncProgress) -> None:
            bar.update(task, completed=progress.done, total=progress.estimated_total)

        try:
            async with sync_engine(settings, url, show) as engine:
                run_ = engine.full if mode == "full" else engine.incremental
                return await run_(entity)
        except (ConfigurationError, SyncAlreadyRunning) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the service tables in schema b24sync (safe to repeat)."""
    settings = _settings()
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        console.print("[green]migrations applied[/green]")


DEMO_COUNTS = {"company": 1000, "contact": 3000, "lead": 2000, "deal": 5000}
ADMIN_KEY_FILE = "admin_api_key"


@app.command()
def run(
    port: int = typer.Option(8080, help="where the API and dashboard listen"),
    emulator_port: int = typer.Option(
        8800, help="the local demo portal's port (no BITRIX_WEBHOOK_URL)"
    ),
) -> None:
    """The main job: a first full sync, then the service, all in one process.

    On embedded defaults: the database, a portal (yours, or a local demo one), a first full sync
    of deals, contacts, leads and companies, then the API, dashboard, worker and scheduler in one
    process until Ctrl-C.
    """
    from b24emu.app import create_app
    from b24emu.server import build_emulator, serving, webhook_url

    settings = _settings()
    admin_key = stored_secret(settings.b24sync_data_dir, ADMIN_KEY_FILE)
    settings = with_overrides(settings, api_keys=",".join([*settings.api_key_list, admin_key]))
    with contextlib.ExitStack() as stack:
        if not settings.portal_configured:
            emu = build_emulator(counts=DEMO_COUNTS, rate=2, burst=50, latency_ms=0)
            try:
                emulator_base = stack.enter_context(serving(create_app(emu), port=emulator_port))
            except RuntimeError as exc:
                console.print(
                    f"[red]{exc}: is the port taken? Choose another with --emulator-port.[/red]"
                )
                raise typer.Exit(2) from None
            application_token = secrets.token_hex(16)
            settings = with_overrides(
                settings,
                bitrix_webhook_url=webhook_url(emu, "127.0.0.1", emulator_port),
                bitrix_application_token=application_token,
            )
            _deliver_demo_events(emulator_base, f"http://127.0.0.1:{port}", application_token)
            console.print(
                f"no BITRIX_WEBHOOK_URL: demo portal (b24emu) on {emulator_base} "
                f"with {sum(DEMO_COUNTS.values())} records, sending its events to this service"
            )
        db = stack.enter_context(DatabaseLocation(settings.database_url, settings.b24sync_data_dir))
        migrate(db.url)
        where = (
            f"embedded PostgreSQL in {settings.b24sync_data_dir}"
            if db.is_embedded
            else "DATABASE_URL"
        )
        console.print(f"[green]database ready[/green] ({where})")
        for entity_ in STREAMS.values():
            summary = asyncio.run(_sync_with_progress(settings, db.url, entity_, "full"))
            console.print(
                f"  {entity_.name}: {summary.status}, {summary.fetched} records, "
                f"{summary.api_calls} API calls, {summary.seconds:.1f} s"
            )

        def ready(service: SyncService) -> None:
            console.print(
                f"[green]dashboard:[/green] http://127.0.0.1:{port}/   API docs: "
                f"http://127.0.0.1:{port}/docs\n"
                f"[green]admin API key:[/green] {admin_key}  (kept in "
                f"{settings.b24sync_data_dir / ADMIN_KEY_FILE})\nPress Ctrl-C to stop."
            )

        _serve(settings, db.url, "127.0.0.1", port, ready)
    console.print("stopped")


def _deliver_demo_events(emulator_base: str, service_base: str, application_token: str) -> None:
    """Configure the demo portal's outbound webhook, as a portal admin would in its UI."""
    import httpx

    httpx.post(
        f"{emulator_base}/_emulator/outbound-webhooks",
        json={
            "handler": service_base + HANDLER_PATH,
            "application_token": application_token,
        },
        timeout=10,
    ).raise_for_status()


def _serve(
    settings: Settings,
    url: str,
    host: str | None,
    port: int,
    on_ready: Callable[[SyncService], None] | None = None,
) -> None:
    from b24sync.runtime.serving import PortTaken, serve_forever

    try:
        asyncio.run(serve_forever(settings, url, host=host, port=port, on_ready=on_ready))
    except (PortTaken, ConfigurationError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8080, help="port to listen on"),
) -> None:
    """Run the HTTP API and dashboard with one in-process worker (scheduler included)."""
    settings = _settings()
    if not (settings.api_key_list or settings.supabase_jwt_secret or settings.supabase_url):
        console.print(
            "[yellow]no API_KEYS, SUPABASE_JWT_SECRET or SUPABASE_URL: every API call will be "
            "refused (401)[/yellow]"
        )
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)

        def ready(service: SyncService) -> None:
            console.print(f"serving on http://{host}:{port}/ (API docs: /docs); Ctrl-C stops")

        _serve(settings, db.url, host, port, ready)
    console.print("stopped")


@app.command()
def worker() -> None:
    """Run job workers only (any number, on any machine sharing the database)."""
    settings = _settings()
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        _serve(settings, db.url, None, 0, lambda _: console.print("worker running; Ctrl-C stops"))
    console.print("stopped")


@app.command()
def sync(
    entity: str = typer.Argument(..., help=STREAM_HELP),
    full: bool = typer.Option(False, "--full", help="export everything"),
    incremental: bool = typer.Option(
        False, "--incremental", help="only records changed since the cursor"
    ),
    json_output: bool = typer.Option(False, "--json", help="print one JSON summary line last"),
) -> None:
    """Sync one entity now, with a progress bar; --json prints a summary line last."""
    if full == incremental:
        console.print("[red]choose exactly one of --full or --incremental[/red]")
        raise typer.Exit(2)
    settings = _settings()
    entity_ = _entity(entity)
    mode = "full" if full else "incremental"
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        summary = asyncio.run(_sync_with_progress(settings, db.url, entity_, mode))
    if json_output:
        typer.echo(json.dumps(summary.as_json(), ensure_ascii=False))
    else:
        console.print(
            f"{summary.entity} {summary.mode}: {summary.status}, fetched {summary.fetched}, "
            f"upserted {summary.upserted}, deleted {summary.deleted}, "
            f"{summary.api_calls} API calls, {summary.seconds:.1f} s"
        )
    if summary.status != RunStatus.SUCCESS:
        console.print(f"[red]{summary.error}[/red]")
        raise typer.Exit(1)


@app.command()
def status(
    json_output: bool = typer.Option(False, "--json", help="print the status as JSON"),
) -> None:
    """Per entity: rows, last run, cursor."""
    settings = _settings()
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        rows = asyncio.run(_entity_status(db.url))
    if json_output:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table = Table("entity", "rows", "deleted", "last run", "status", "fetched", "api calls")
    for row in rows:
        run_ = row["last_run"] or {}
        table.add_row(
            row["entity"],
            str(row["rows"]),
            str(row["deleted_rows"]),
            str(run_.get("started_at", "never")),
            str(run_.get("status", "")),
            str(run_.get("fetched", "")),
            str(run_.get("api_calls", "")),
        )
    Console().print(table)


async def _entity_status(url: str) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(libpq_url(url)) as conn:
        return await entity_status(conn)


@app.command()
def schema(entity: str = typer.Argument(..., help=OBJECT_HELP)) -> None:
    """The column map of an entity's table with the Bitrix24 labels (after a first sync)."""
    settings = _settings()
    entity_ = _entity(entity)
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        columns = asyncio.run(column_map(db.url, entity_))
    if not columns:
        console.print(f"no columns yet: run `b24sync sync {entity_.name} --full` first")
        raise typer.Exit(1)
    table = Table(
        "column",
        "type",
        "Bitrix24 field",
        "label",
        "bitrix type",
        title=f"bitrix24.{entity_.table}",
    )
    for col in columns:
        label = col["title"] + (" (removed on the portal)" if col["removed"] else "")
        table.add_row(col["column"], col["pg_type"], col["field"], label, col["bitrix_type"])
    Console().print(table)


OFFLINE_OPTION = typer.Option(
    False, "--offline", help="offline events: no public URL, a worker drains them every 15 s"
)


@webhooks_app.command("register")
def webhooks_register(
    handler_base_url: str | None = typer.Argument(
        None, help="this service's public base URL (https); not needed with --offline"
    ),
    offline: bool = OFFLINE_OPTION,
) -> None:
    """Bind the 12 CRM events to HANDLER_BASE_URL/api/v1/webhooks/bitrix (local application)."""
    _print_json(
        _with_service(lambda service: service.events.register(handler_base_url, offline=offline))
    )


@webhooks_app.command("unregister")
def webhooks_unregister(
    handler_base_url: str | None = typer.Argument(None, help="the base URL given to register"),
    offline: bool = OFFLINE_OPTION,
) -> None:
    """Unbind the CRM events."""
    _print_json(
        _with_service(lambda service: service.events.unregister(handler_base_url, offline=offline))
    )


@webhooks_app.command("list")
def webhooks_list() -> None:
    """How events reach the service: the mode, the bindings, the last event received."""
    _print_json(_with_service(lambda service: service.events.registered()))


def _with_service(
    action: Callable[[SyncService], Awaitable[dict[str, object]]],
) -> dict[str, object]:
    settings = _settings()

    async def go(url: str) -> dict[str, object]:
        async with sync_service(settings, url) as service:
            return await action(service)

    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        try:
            return asyncio.run(go(db.url))
        except (EventsUnavailable, UnsafeHandlerUrl, ConfigurationError, PortalAuthError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None


def _print_json(value: dict[str, object]) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


@seed_app.command("create")
def seed_create(
    companies: int = typer.Option(100, min=0, max=5000, help="companies to create"),
    contacts: int = typer.Option(100, min=0, max=5000, help="contacts, linked to the companies"),
) -> None:
    """Create N companies and N contacts linked to them (batches of 50, marked as generated)."""
    _run_seed("create", lambda tool, show: tool.create(companies, contacts, show))


@seed_app.command("clear")
def seed_clear(
    everything: bool = typer.Option(
        False, "--all", help="delete EVERY contact and company of the portal, not only generated"
    ),
) -> None:
    """Delete generated contacts, then companies (--all: every one in the portal)."""
    if everything:
        typer.confirm("Delete every contact and company in the portal?", abort=True)
    _run_seed("clear", lambda tool, show: tool.clear(everything=everything, on_progress=show))


def _run_seed(
    label: str, action: Callable[[TestData, Callable[[int], None]], Awaitable[SeedReport]]
) -> None:
    settings = _settings()

    async def go(url: str) -> SeedReport:
        with Progress(
            TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f} %"), console=console
        ) as bar:
            task = bar.add_task(label, total=100)
            async with portal_client(settings, url) as client:
                tool = TestData(client, libpq_url(url))
                return await action(tool, lambda percent: bar.update(task, completed=percent))

    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        try:
            report = asyncio.run(go(db.url))
        except (SeedBusy, ConfigurationError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(
        f"{label}: {report.companies} companies, {report.contacts} contacts, "
        f"{report.api_calls} API calls"
    )
    if report.failed:
        for what, why in report.failed.items():
            console.print(f"[red]failed: {what}: {why}[/red]")
        raise typer.Exit(1)


@app.command()
def emulator(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8800, help="port to listen on"),
    deals: int = typer.Option(0, min=0, help="demo deals to generate"),
    contacts: int = typer.Option(0, min=0, help="demo contacts to generate"),
    companies: int = typer.Option(0, min=0, help="demo companies to generate"),
    leads: int = typer.Option(0, min=0, help="demo leads to generate"),
    rate: float = typer.Option(2.0, min=0, help="leaky bucket: requests drained per second"),
    burst: int = typer.Option(50, min=1, help="leaky bucket: requests allowed at once"),
    latency_ms: float = typer.Option(0.0, min=0, help="added to every REST call"),
) -> None:
    """Serve b24emu, a local Bitrix24 portal, and print its inbound-webhook URL.

    --rate 0 switches the leaky bucket off. The control API is under /_emulator/.
    """
    from b24emu.server import build_emulator, serve, webhook_url

    configure_logging(False)
    counts = {"deal": deals, "contact": contacts, "company": companies, "lead": leads}
    emu = build_emulator(counts=counts, rate=rate, burst=burst, latency_ms=latency_ms)
    typer.echo(f"BITRIX_WEBHOOK_URL={webhook_url(emu, host, port)}")
    console.print(
        f"b24emu serving {sum(counts.values())} records on http://{host}:{port} (Ctrl-C stops)"
    )
    serve(emu, host, port)


def main() -> None:
    """The CLI; an error we name, or a lost database, ends it with one line and exit code 1."""
    try:
        app(prog_name="b24sync")
    except (B24SyncError, psycopg.OperationalError) as exc:
        console.print(f"[red]error:[/red] {redact(f'{type(exc).__name__}: {exc}')}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
