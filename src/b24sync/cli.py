"""The `b24sync` command line: a thin shell over the services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import typer
from psycopg import AsyncConnection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from b24sync.config import (
    DEMO_PORTAL_FILE,
    Settings,
    keep_demo_portal,
    load_settings,
    stored_secret,
    with_overrides,
)
from b24sync.errors import (
    B24SyncError,
    ConfigurationError,
    EventsUnavailable,
    SyncAlreadyRunning,
    UnknownEntity,
    UnsafeHandlerUrl,
    UsageError,
)
from b24sync.logs import configure_logging
from b24sync.redaction import redact
from b24sync.runtime import discovered_streams, portal_client, sync_engine, sync_service
from b24sync.service import SyncService
from b24sync.service.events import HANDLER_PATH
from b24sync.service.testdata import SeedBusy, SeedReport, TestData
from b24sync.store.database import DatabaseLocation, libpq_url
from b24sync.store.migrate import migrate
from b24sync.store.overview import column_map, entity_status
from b24sync.store.runs import RunMode, RunStatus
from b24sync.streams import STREAMS, Kind, Stream, stream_or_item, streams_of
from b24sync.sync import discovery
from b24sync.sync.engine import Progress as SyncProgress
from b24sync.sync.engine import SyncSummary

# Exit codes, the same for every command (README, "Command line").
EXIT_FAILED = 1  # the work ran and failed (a sync's error, a lost database, a named error)
EXIT_USAGE = 2  # a wrong argument or configuration: nothing ran
EXIT_BUSY = 3  # refused because the same work is already running: try again later
# What ends a command with which code; any other error we name, or a lost database: EXIT_FAILED.
EXIT_CODES: dict[type[Exception], int] = {
    SyncAlreadyRunning: EXIT_BUSY,
    SeedBusy: EXIT_BUSY,
    ConfigurationError: EXIT_USAGE,
    UsageError: EXIT_USAGE,
    UnknownEntity: EXIT_USAGE,
    EventsUnavailable: EXIT_USAGE,
    UnsafeHandlerUrl: EXIT_USAGE,
}


def exit_code(exc: BaseException) -> int:
    return next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), EXIT_FAILED)


app = typer.Typer(
    help="Keep a PostgreSQL copy of a Bitrix24 CRM current.",
    epilog=(
        "Exit codes: 0 done, 1 failed, 2 wrong usage or configuration, 3 busy (the same work is "
        "already running; try later). With no portal configured, commands use the demo portal "
        "of a running `b24sync run`."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain help: readable at 80 columns and in logs
)
webhooks_app = typer.Typer(help="Register the service's event handler with the portal.")
seed_app = typer.Typer(
    help="Fill the portal with linked test companies and contacts, or clear them."
)
db_app = typer.Typer(help="The service's own tables.")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(seed_app, name="seed")
app.add_typer(db_app, name="db")

console = Console(stderr=True, soft_wrap=True)  # a person's lines: never cut mid-sentence
STREAM_HELP = "a stream: " + ", ".join(STREAMS)
OBJECT_HELP = "an object stream: " + ", ".join(s.name for s in streams_of(Kind.OBJECT))


def _settings(*, read_demo_portal: bool = True, service: bool = False) -> Settings:
    """The settings, and logging: a service logs its work; a one-off command (``service``
    False) only its warnings, next to the lines it prints for a person (DEBUG: everything)."""
    try:
        settings = load_settings(read_demo_portal=read_demo_portal)
    except ValueError as exc:
        raise ConfigurationError(f"configuration error: {exc}") from None
    configure_logging(settings.debug, quiet=not service)
    return settings


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[DatabaseLocation]:
    """The database, migrated: DATABASE_URL or the embedded server (started or joined)."""
    location = DatabaseLocation(
        settings.database_url, settings.b24sync_data_dir, settings.b24sync_db_port
    )
    with location as db:
        migrate(db.url)
        yield db


def _wide_console() -> Console:
    """Tables on stdout: a pipe or a narrow terminal gets whole values, not cut ones."""
    out = Console()
    if not out.is_terminal or out.width < 120:
        out = Console(width=max(out.width, 160))
    return out


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
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(f"{entity.name} {mode}", total=None)

        def show(progress: SyncProgress) -> None:
            bar.update(task, completed=progress.done, total=progress.estimated_total)

        async with sync_engine(settings, url, show) as engine:
            return await engine.run_mode(entity, mode)


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the service tables in schema b24sync (safe to repeat)."""
    settings = _settings()
    with _database(settings):
        console.print("[green]migrations applied[/green]")


DEMO_COUNTS = {"company": 1000, "contact": 3000, "lead": 2000, "deal": 5000, "item": 300}
ADMIN_KEY_FILE = "admin_api_key"
LOG_FILE = "b24sync.log"


@app.command()
def run(
    host: str = typer.Option("127.0.0.1", help="address the API and dashboard listen on"),
    port: int = typer.Option(8080, help="where the API and dashboard listen"),
    emulator_port: int = typer.Option(
        8800, help="the local demo portal's port (no BITRIX_WEBHOOK_URL)"
    ),
) -> None:
    """The main job: the database, a portal, a sync of every stream, then the service.

    On embedded defaults: PostgreSQL under the data directory (also on 127.0.0.1 for BI tools),
    your portal or a local demo one, a sync of every stream (a full one the first time; against
    your portal an incremental one after that), then the API, dashboard, worker and scheduler in
    one process until Ctrl-C. Streams read per parent (product rows: a call per 50 deals) are
    synced by the service once it is up, with progress on the dashboard. Log lines go to
    data/b24sync.log.
    """
    from b24emu.app import create_app
    from b24emu.server import build_emulator, serving, webhook_url
    from b24sync.runtime.serving import PortTaken, listening_socket

    settings = _settings(read_demo_portal=False, service=True)
    data_dir = settings.b24sync_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(settings.debug, log_file=data_dir / LOG_FILE)
    try:
        listening_socket(host, port).close()  # before minutes of syncing, not after
    except PortTaken as exc:
        raise ConfigurationError(
            f"{exc}: is b24sync already running? Choose another with --port."
        ) from None
    admin_key = stored_secret(data_dir, ADMIN_KEY_FILE)
    settings = with_overrides(settings, api_keys=",".join([*settings.api_key_list, admin_key]))
    summary: dict[str, str] = {}
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # ours, reachable
    with contextlib.ExitStack() as stack:
        demo = not settings.portal_configured
        if demo:
            emu = build_emulator(counts=DEMO_COUNTS, rate=2, burst=50, latency_ms=0)
            try:
                emulator_base = stack.enter_context(serving(create_app(emu), port=emulator_port))
            except RuntimeError as exc:
                raise ConfigurationError(
                    f"{exc}: is the port taken? Choose another with --emulator-port."
                ) from None
            application_token = secrets.token_hex(16)
            settings = with_overrides(
                settings,
                bitrix_webhook_url=webhook_url(emu, "127.0.0.1", emulator_port),
                bitrix_application_token=application_token,
                demo_portal=True,
            )
            note = keep_demo_portal(data_dir, webhook_url(emu, "127.0.0.1", emulator_port))
            stack.callback(note.unlink, missing_ok=True)
            _deliver_demo_events(emulator_base, base, application_token)
            console.print(
                f"demo portal (b24emu, no BITRIX_WEBHOOK_URL) on {emulator_base} with "
                f"{sum(len(s.records) for s in emu.portal.stores.values()):,} CRM records; its "
                "events come to this service"
            )
            summary["demo portal"] = (
                f"{emulator_base}/  (the CLI finds it through {data_dir / DEMO_PORTAL_FILE})"
            )
        db = stack.enter_context(_database(settings))
        settings = _with_bi_url(settings, db)
        summary["database"] = _database_summary(db, settings)
        console.print(f"[green]database ready[/green] ({summary['database']})")
        mode = RunMode.FULL if demo else RunMode.INCREMENTAL  # the demo portal starts anew
        later: list[str] = []  # a call per 50 parents: synced by the service, not before it
        streams = asyncio.run(discovered_streams(settings, db.url))
        width = max(len(stream.name) for stream in streams)
        for stream in streams:
            if stream.owner_key is not None:
                later.append(stream.name)
                continue
            done = asyncio.run(_sync_with_progress(settings, db.url, stream, mode))
            console.print(
                f"  {stream.name:<{width}} {done.mode:<11} {done.status:<8} {done.fetched:>7,} records "
                f"{done.api_calls:>5} API calls {done.seconds:>6.1f} s"
            )
        if later:
            summary["in the background"] = f"{', '.join(later)}: progress on the dashboard"
        summary = {
            "dashboard": f"{base}/",
            "API docs": f"{base}/docs",
            "admin API key": f"{admin_key}  (kept in {data_dir / ADMIN_KEY_FILE})",
            **summary,
            "log": str(data_dir / LOG_FILE),
        }

        pending: list[asyncio.Task[None]] = []

        def ready(service: SyncService) -> None:
            loop = asyncio.get_running_loop()
            pending.extend(loop.create_task(_queue_sync(service, name, mode)) for name in later)
            width = max(map(len, summary))
            console.print("[green]b24sync is running[/green]; Ctrl-C stops it.")
            for label, value in summary.items():
                console.print(f"  {label:<{width}}  {value}", highlight=False)

        _serve(settings, db.url, host, port, ready)
    console.print("stopped")


async def _queue_sync(service: SyncService, name: str, mode: str) -> None:
    """Queue a sync of ``name``; one already queued (the scheduler's first tick may come
    first) does the same work."""
    with contextlib.suppress(SyncAlreadyRunning):
        await service.request_sync(name, mode)


def _with_bi_url(settings: Settings, db: DatabaseLocation) -> Settings:
    """The dashboard shows analysts BI_DATABASE_URL, or else the embedded server's TCP address."""
    if settings.bi_database_url is None and db.tcp is not None:
        return with_overrides(settings, bi_database_url=db.tcp.url)
    return settings


def _database_summary(db: DatabaseLocation, settings: Settings) -> str:
    if db.tcp is not None:
        return f'{db.tcp.url}  (BI tools: README, "Connect a BI tool")'
    if db.is_embedded:
        return (
            f"embedded PostgreSQL in {settings.b24sync_data_dir} (socket only: B24SYNC_DB_PORT=0)"
        )
    return "DATABASE_URL"


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
    except PortTaken as exc:
        raise ConfigurationError(str(exc)) from None


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8080, help="port to listen on"),
) -> None:
    """Run the HTTP API and dashboard with one in-process worker (scheduler included)."""
    settings = _settings(service=True)
    if not (settings.api_key_list or settings.supabase_jwt_secret or settings.supabase_url):
        console.print(
            "[yellow]no API_KEYS, SUPABASE_JWT_SECRET or SUPABASE_URL: every API call will be "
            "refused (401)[/yellow]"
        )
    with _database(settings) as db:
        settings = _with_bi_url(settings, db)

        def ready(service: SyncService) -> None:
            console.print(f"serving on http://{host}:{port}/ (API docs: /docs); Ctrl-C stops")

        _serve(settings, db.url, host, port, ready)
    console.print("stopped")


@app.command()
def worker() -> None:
    """Run job workers only (any number, on any machine sharing the database)."""
    settings = _settings(service=True)
    with _database(settings) as db:
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
    """Sync one stream now, with a progress bar; --json prints a summary line last (also when
    the sync fails or is refused: then with "status" and "error")."""
    mode = RunMode.FULL if full else RunMode.INCREMENTAL
    try:
        if full == incremental:
            raise UsageError("choose exactly one of --full or --incremental")
        settings = _settings()
        stream = stream_or_item(entity)
        with _database(settings) as db:
            summary = asyncio.run(_sync_with_progress(settings, db.url, stream, mode))
    except (B24SyncError, psycopg.OperationalError) as exc:
        if json_output:
            typer.echo(json.dumps(_unfinished(entity, mode, exc), ensure_ascii=False))
        raise
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
        raise typer.Exit(EXIT_FAILED)


def _unfinished(entity: str, mode: str, exc: Exception) -> dict[str, Any]:
    """The --json line of a sync that never ran (refused) or broke off (failed)."""
    refused = exit_code(exc) != EXIT_FAILED
    return {
        "entity": entity,
        "mode": mode,
        **dict.fromkeys(("fetched", "upserted", "deleted", "api_calls", "seconds"), 0),
        "status": "refused" if refused else RunStatus.FAILED,
        "error": redact(str(exc) if refused else f"{type(exc).__name__}: {exc}"),
    }


@app.command()
def status(
    json_output: bool = typer.Option(False, "--json", help="print the status as JSON"),
) -> None:
    """Per stream: rows, deleted rows, the last run and the cursor incremental runs start from."""
    settings = _settings()
    with _database(settings) as db:
        rows = asyncio.run(_entity_status(db.url))
    if json_output:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table = Table("stream", "rows", "deleted", "last run (UTC)", "mode", "status", "API calls")
    table.add_column("cursor (changed since, UTC)", no_wrap=True)
    for row in rows:
        run_ = row["last_run"] or {}
        cursor = row["cursor"] or {}
        table.add_row(
            row["entity"],
            f"{row['rows']:,}",
            f"{row['deleted_rows']:,}",
            _minutes(run_.get("started_at")) or "never",
            str(run_.get("sync_type", "")),
            str(run_.get("status", "")),
            str(run_.get("api_calls", "")),
            f"{cursor['field']} > {_minutes(cursor['value'])}" if cursor else "",
        )
    _wide_console().print(table)


def _minutes(timestamp: str | None) -> str:
    """An ISO timestamp with any offset (the portal's own) -> ``2026-11-26 09:41`` in UTC."""
    if not timestamp:
        return ""
    return datetime.fromisoformat(timestamp).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


async def _entity_status(url: str) -> list[dict[str, Any]]:
    async with await AsyncConnection.connect(libpq_url(url)) as conn:
        await discovery.load(conn)  # the smart processes the service last discovered
        return await entity_status(conn)


@app.command()
def schema(entity: str = typer.Argument(..., help=OBJECT_HELP)) -> None:
    """The column map of an entity's table with the Bitrix24 labels (after a first sync)."""
    settings = _settings()
    entity_ = stream_or_item(entity)
    with _database(settings) as db:
        columns = asyncio.run(column_map(db.url, entity_))
    if not columns:
        console.print(f"no columns yet: run `b24sync sync {entity_.name} --full` first")
        raise typer.Exit(EXIT_FAILED)
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
    _wide_console().print(table)


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

    with _database(settings) as db:
        return asyncio.run(go(db.url))


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

    with _database(settings) as db:
        report = asyncio.run(go(db.url))
    console.print(
        f"{label}: {report.companies} companies, {report.contacts} contacts, "
        f"{report.api_calls} API calls"
    )
    if report.failed:
        for what, why in report.failed.items():
            console.print(f"[red]failed: {what}: {why}[/red]")
        raise typer.Exit(EXIT_FAILED)


@app.command()
def emulator(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8800, help="port to listen on"),
    deals: int = typer.Option(0, min=0, help="demo deals to generate"),
    contacts: int = typer.Option(0, min=0, help="demo contacts to generate"),
    companies: int = typer.Option(0, min=0, help="demo companies to generate"),
    leads: int = typer.Option(0, min=0, help="demo leads to generate"),
    items: int = typer.Option(
        0, min=0, help="items of each of the two demo smart processes (created when > 0)"
    ),
    rate: float = typer.Option(2.0, min=0, help="leaky bucket: requests drained per second"),
    burst: int = typer.Option(50, min=1, help="leaky bucket: requests allowed at once"),
    latency_ms: float = typer.Option(0.0, min=0, help="added to every REST call"),
) -> None:
    """Serve b24emu, a local Bitrix24 portal, and print its inbound-webhook URL.

    --rate 0 switches the leaky bucket off. The control API is under /_emulator/.
    """
    from b24emu.server import build_emulator, serve, webhook_url

    configure_logging(False)
    counts = {
        "deal": deals,
        "contact": contacts,
        "company": companies,
        "lead": leads,
        "item": items,
    }
    emu = build_emulator(counts=counts, rate=rate, burst=burst, latency_ms=latency_ms)
    typer.echo(f"BITRIX_WEBHOOK_URL={webhook_url(emu, host, port)}")
    console.print(
        f"b24emu serving {sum(len(s.records) for s in emu.portal.stores.values())} records on "
        f"http://{host}:{port} (Ctrl-C stops)"
    )
    serve(emu, host, port)


def main() -> None:
    """The CLI; an error we name, or a lost database, ends it with one line and its exit code
    (EXIT_CODES)."""
    try:
        app(prog_name="b24sync")
    except (B24SyncError, psycopg.OperationalError) as exc:
        code = exit_code(exc)
        said = str(exc) if code != EXIT_FAILED else f"{type(exc).__name__}: {exc}"
        console.print(f"[red]error:[/red] {redact(said)}")
        raise SystemExit(code) from None


if __name__ == "__main__":
    main()
