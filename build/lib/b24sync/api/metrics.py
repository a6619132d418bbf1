"""/metrics in the Prometheus text format, built from the run log so every process agrees."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

RUN_LABELS = ("entity", "sync_type", "status")


def render_metrics(snapshot: dict[str, Any]) -> tuple[bytes, str]:
    """A fresh registry per scrape: the numbers are totals read from PostgreSQL."""
    registry = CollectorRegistry()
    per_run = {
        "runs": Gauge(
            "b24sync_sync_runs", "Sync runs in the run log", RUN_LABELS, registry=registry
        ),
        "fetched": Gauge(
            "b24sync_records_fetched", "Records fetched by sync runs", RUN_LABELS, registry=registry
        ),
        "upserted": Gauge(
            "b24sync_records_upserted", "Rows written by sync runs", RUN_LABELS, registry=registry
        ),
        "deleted": Gauge(
            "b24sync_records_deleted",
            "Rows marked deleted by sync runs",
            RUN_LABELS,
            registry=registry,
        ),
        "api_calls": Gauge(
            "b24sync_api_calls",
            "Bitrix24 HTTP calls made by sync runs",
            RUN_LABELS,
            registry=registry,
        ),
        "seconds": Gauge(
            "b24sync_sync_seconds",
            "Time spent in finished sync runs",
            RUN_LABELS,
            registry=registry,
        ),
    }
    for totals in snapshot["runs"]:
        labels = [totals[label] for label in RUN_LABELS]
        for key, gauge in per_run.items():
            gauge.labels(*labels).set(float(totals[key] or 0))
    rows = Gauge("b24sync_rows", "Live rows in the mirror", ["entity"], registry=registry)
    for entity, count in snapshot["rows"].items():
        rows.labels(entity).set(count)
    Gauge("b24sync_events_pending", "Received events not applied yet", registry=registry).set(
        snapshot["events_pending"]
    )
    Gauge("b24sync_event_lag_seconds", "Age of the oldest unapplied event", registry=registry).set(
        snapshot["event_lag_seconds"]
    )
    Gauge(
        "b24sync_rate_limit_wait_seconds",
        "Time this process waited for the client-side leaky bucket",
        registry=registry,
    ).set(snapshot["rate_limit_wait_seconds"])
    Gauge(
        "b24sync_process_api_calls", "Bitrix24 HTTP calls made by this process", registry=registry
    ).set(snapshot["process_api_calls"])
    return generate_latest(registry), CONTENT_TYPE_LATEST
