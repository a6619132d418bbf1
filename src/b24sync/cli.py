"""The `b24sync` command line: a thin shell over the services."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import NoReturn

import typer
from rich.console import Console

from b24sync.config import Settings, load_settings
from b24sync.errors import ConfigurationError
from b24sync.logs import configure_logging
from b24sync.store.database import DatabaseLocation
from b24sync.store.migrate import migrate

app = typer.Typer(
    help="Keep a PostgreSQL copy of a Bitrix24 CRM current.",
    no_args_is_help=True,
    add_completion=False,
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


def _settings() -> Settings:
    try:
        settings = load_settings()
    except (ConfigurationError, ValueError) as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.debug)
    return settings


def _not_yet(what: str, issue: int) -> NoReturn:
    console.print(f"[yellow]{what} is not available in this build yet (issue #{issue}).[/yellow]")
    raise typer.Exit(2)


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or upgrade the service tables in schema b24sync (safe to repeat)."""
    settings = _settings()
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        console.print("[green]migrations applied[/green]")


@app.command()
def run() -> None:
    """Everything in one process on embedded defaults: database, portal, first sync, dashboard."""
    settings = _settings()
    with DatabaseLocation(settings.database_url, settings.b24sync_data_dir) as db:
        migrate(db.url)
        where = (
            "embedded PostgreSQL under " + str(settings.b24sync_data_dir)
            if db.is_embedded
            else "DATABASE_URL"
        )
        console.print(f"[green]database ready[/green] ({where})")
        console.print(
            "The dashboard will be at http://127.0.0.1:8000/ once the service lands (issue #5)."
        )
        console.print("Press Ctrl-C to stop.")
        _wait_for_interrupt()
    console.print("stopped")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the HTTP API and dashboard with one in-process worker."""
    _not_yet("serve", 5)


@app.command()
def worker() -> None:
    """Run job workers only (any number, on any machine sharing the database)."""
    _not_yet("worker", 5)


@app.command()
def sync(
    entity: str = typer.Argument(..., help="deal, contact, lead or company"),
    full: bool = typer.Option(False, "--full", help="export everything"),
    incremental: bool = typer.Option(
        False, "--incremental", help="only records changed since the cursor"
    ),
    json_output: bool = typer.Option(False, "--json", help="print one JSON summary line last"),
) -> None:
    """Sync one entity now."""
    _not_yet("sync", 4)


@app.command()
def status(json_output: bool = typer.Option(False, "--json")) -> None:
    """Per entity: rows, last run, cursor."""
    _not_yet("status", 4)


@app.command()
def schema(entity: str = typer.Argument(..., help="deal, contact, lead or company")) -> None:
    """The column map of an entity's table with the Bitrix24 labels."""
    _not_yet("schema", 4)


@webhooks_app.command("register")
def webhooks_register(handler_base_url: str) -> None:
    """Bind the CRM events to HANDLER_BASE_URL/api/v1/webhooks/bitrix."""
    _not_yet("webhooks register", 5)


@webhooks_app.command("unregister")
def webhooks_unregister(handler_base_url: str) -> None:
    """Unbind the CRM events."""
    _not_yet("webhooks unregister", 5)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Show the event bindings the portal has."""
    _not_yet("webhooks list", 5)


@seed_app.command("create")
def seed_create(companies: int = 100, contacts: int = 100) -> None:
    """Create N companies and N contacts linked to them."""
    _not_yet("seed create", 6)


@seed_app.command("clear")
def seed_clear(all_records: bool = typer.Option(False, "--all")) -> None:
    """Delete generated contacts, then companies (--all: every one in the portal)."""
    _not_yet("seed clear", 6)


@app.command()
def emulator(
    host: str = "127.0.0.1",
    port: int = 8800,
    deals: int = 0,
    contacts: int = 0,
    companies: int = 0,
    leads: int = 0,
    rate: float = 2.0,
    burst: int = 50,
    latency_ms: float = 0.0,
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
    app(prog_name="b24sync")


if __name__ == "__main__":
    main()
