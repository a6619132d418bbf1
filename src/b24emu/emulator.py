"""One emulated portal: data, auth, limits, faults, statistics; runs commands and batches."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# items, stagehistory, productrows register their methods
from b24emu import errors, items, productrows, stagehistory  # noqa: F401
from b24emu.events import EventHub
from b24emu.fields import ENTITIES
from b24emu.limits import CostModel, Faults, LeakyBucket, OperatingBudget, Stats
from b24emu.methods import METHODS, NOT_IN_BATCH, Call, MethodResult
from b24emu.params import parse_query
from b24emu.portal import PORTAL_TZ, Portal

MAX_BATCH = 50
_ENTITY_LISTS = frozenset(f"crm.{entity}.list" for entity in ENTITIES)
_REFERENCE = re.compile(r"\$(result|result_next|result_total)((?:\[[^\]]*\])+)")
_PATH = re.compile(r"\[([^\]]*)\]")


@dataclass
class AppCredentials:
    client_id: str
    client_secret: str
    access_token: str
    refresh_token: str
    expires_at: float
    redirect_uri: str = ""  # the local application's handler path
    codes: dict[str, float] = field(default_factory=dict)  # authorization code -> expiry


@dataclass
class Emulator:
    portal: Portal = field(default_factory=Portal)
    webhook_user_id: int = 1
    webhook_token: str = field(default_factory=lambda: secrets.token_hex(8))
    bucket: LeakyBucket = field(default_factory=LeakyBucket)
    cost: CostModel = field(default_factory=CostModel)
    budget: OperatingBudget = field(default_factory=OperatingBudget)
    faults: Faults = field(default_factory=Faults)
    stats: Stats = field(default_factory=Stats)
    app: AppCredentials | None = None
    app_application_token: str = field(default_factory=lambda: secrets.token_hex(16))
    events: EventHub = field(init=False)

    def __post_init__(self) -> None:
        self._connect_events()

    def _connect_events(self) -> None:
        self.events = EventHub(self.portal.domain, self.portal.member_id)
        self.portal.listeners.append(
            lambda entity, action, rid: self.events.on_change(
                entity, action, rid, self.portal.clock.iso()
            )
        )

    def reset(self) -> None:
        """Empty portal, statistics, bindings and operating budgets; auth and settings stay."""
        self.portal = Portal(self.portal.domain)
        self.stats = Stats()
        self.budget = OperatingBudget(window=self.budget.window, budget=self.budget.budget)
        self._connect_events()

    # --- auth -------------------------------------------------------------------------------

    def check_webhook(self, user_id: str, token: str) -> int:
        if (
            not user_id.isdigit()
            or int(user_id) != self.webhook_user_id
            or not secrets.compare_digest(token, self.webhook_token)
        ):
            raise errors.invalid_credentials()
        return int(user_id)

    def check_access_token(self, token: str | None) -> int:
        if not token:
            raise errors.no_auth_found()
        if self.app is None or not secrets.compare_digest(str(token), self.app.access_token):
            raise errors.RestError("invalid_token", "The access token provided is invalid.", 401)
        if time.time() > self.app.expires_at:
            raise errors.expired_token()
        return self.webhook_user_id

    def install_app(self, lifetime: float = 3600.0, redirect_uri: str = "") -> AppCredentials:
        self.app = AppCredentials(
            client_id=f"local.{secrets.token_hex(6)}",
            client_secret=secrets.token_hex(16),
            access_token=secrets.token_hex(16),
            refresh_token=secrets.token_hex(16),
            expires_at=time.time() + lifetime,
            redirect_uri=redirect_uri,
        )
        return self.app

    def authorization_code(self, client_id: str) -> tuple[AppCredentials, str]:
        """The signed-in user agrees at /oauth/authorize/: a code valid for 30 s
        (settings/oauth/index.md)."""
        app = self.app
        if app is None or client_id != app.client_id:
            raise errors.RestError("invalid_client", "The application is not installed", 400)
        code = secrets.token_hex(16)
        app.codes[code] = time.time() + 30
        return app, code

    def exchange(
        self, grant_type: str, client_id: str, client_secret: str, secret: str
    ) -> AppCredentials:
        """The OAuth server's /oauth/token/: a refresh token or an authorization code (each
        spent once) for a new pair."""
        app = self.app
        if app is None or (client_id, client_secret) != (app.client_id, app.client_secret):
            raise errors.RestError("invalid_client", "Invalid client", 400)
        if grant_type == "refresh_token":
            valid = secrets.compare_digest(secret, app.refresh_token)
        elif grant_type == "authorization_code":
            valid = app.codes.pop(secret, 0.0) > time.time()
        else:
            raise errors.RestError(
                "unsupported_grant_type", f"{grant_type!r} is not supported", 400
            )
        if not valid:
            raise errors.RestError(
                "invalid_grant", "Invalid authorization code or refresh token", 400
            )
        app.access_token, app.refresh_token = secrets.token_hex(16), secrets.token_hex(16)
        app.expires_at = time.time() + 3600
        return app

    # --- execution --------------------------------------------------------------------------

    def time_block(self, started: float, method: str, processing: float) -> dict[str, Any]:
        """The `time` block; dates follow the portal's clock (which tests may move forward)."""
        finished = time.time()
        shift = self.portal.clock.offset.total_seconds()
        return {
            "start": started,
            "finish": finished,
            "duration": finished - started,
            "processing": processing,
            "date_start": datetime.fromtimestamp(started + shift, PORTAL_TZ)
            .replace(microsecond=0)
            .isoformat(),
            "date_finish": datetime.fromtimestamp(finished + shift, PORTAL_TZ)
            .replace(microsecond=0)
            .isoformat(),
            "operating_reset_at": int(self.budget.reset_at(method)),
            "operating": round(self.budget.operating(method), 4),
        }

    def run_command(
        self, method: str, params: dict[str, Any], auth: str, user_id: int
    ) -> tuple[MethodResult, float]:
        """Run one method; returns its result and its simulated server seconds."""
        handler = METHODS.get(method)
        if handler is None:
            raise errors.method_not_found()
        if self.budget.blocked_until(method) is not None:
            self.stats.operation_limited += 1
            raise errors.operation_time_limit()
        self.stats.commands += 1
        self.stats.by_method[method] += 1
        outcome = handler(Call(self, params, auth, user_id))
        if method in _ENTITY_LISTS:
            self._withhold_an_id(outcome)
        seconds = self.cost.command_seconds(
            returned=outcome.returned, counted_rows=outcome.counted_rows
        )
        seconds += self.faults.latency_per_record_ms * outcome.returned / 1000
        self.budget.charge(method, seconds)
        self.stats.records_returned += outcome.returned
        return outcome, seconds

    def _withhold_an_id(self, outcome: MethodResult) -> None:
        """The ``missing_id`` fault: one record of a list page loses its ID (a copy is changed;
        the stored record keeps it)."""
        records = outcome.result
        if (
            not isinstance(records, list)
            or not records
            or not self.faults.roll(self.faults.missing_id)
        ):
            return
        index = self.faults.rng.randrange(len(records))
        damaged = dict(records[index])
        withheld = damaged.pop("ID", None)
        if withheld is None:
            return
        records[index] = damaged
        self.stats.faults_injected += 1
        self.stats.ids_withheld.append(int(withheld))

    def run_batch(
        self, params: dict[str, Any], auth: str, user_id: int
    ) -> tuple[dict[str, Any], float]:
        """batch (settings/how-to-call-rest-api/batch.md): refs resolved before each command."""
        cmd = params.get("cmd") or params.get("CMD") or {}
        as_list = isinstance(cmd, list)
        commands = (
            list(enumerate(cmd)) if as_list else list(cmd.items()) if isinstance(cmd, dict) else []
        )
        if len(commands) > MAX_BATCH:
            raise errors.batch_length_exceeded()
        halt = str(params.get("halt", 0)).lower() in ("1", "true", "y")
        results: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        totals: dict[str, Any] = {}
        nexts: dict[str, Any] = {}
        times: dict[str, Any] = {}
        spent = 0.0
        for key, text in commands:
            key = str(key)
            started = time.time()
            method, _, query = str(text).partition("?")
            method = method.strip().lower().removesuffix(".json")
            try:
                if method in NOT_IN_BATCH:
                    raise errors.batch_method_not_allowed()
                sub = _resolve_references(parse_query(query), results, nexts, totals)
                outcome, seconds = self.run_command(method, sub, auth, user_id)
            except errors.RestError as exc:
                failures[key] = exc.envelope()
                if halt:
                    break
                continue
            spent += seconds
            results[key] = outcome.result
            if outcome.total is not None:
                totals[key] = outcome.total
            if outcome.next is not None:
                nexts[key] = outcome.next
            times[key] = self.time_block(started, method, seconds)

        def shaped(values: dict[str, Any]) -> Any:
            if not values:
                return []
            return (
                [values[k] for k in sorted(values, key=int)]
                if as_list and len(values) == len(commands)
                else values
            )

        return {
            "result": shaped(results),
            "result_error": shaped(failures),
            "result_total": shaped(totals),
            "result_next": shaped(nexts),
            "result_time": shaped(times),
        }, spent

    async def pause(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


def _lookup(root: Any, path: list[str]) -> Any:
    node = root
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif (
            isinstance(node, list)
            and part.lstrip("-").isdigit()
            and -len(node) <= int(part) < len(node)
        ):
            node = node[int(part)]
        else:
            return None
    return node


def _resolve_references(
    value: Any, results: dict[str, Any], nexts: dict[str, Any], totals: dict[str, Any]
) -> Any:
    """Replace `$result[key][0][ID]` (and result_next/result_total) inside parameter values."""
    if isinstance(value, dict):
        return {k: _resolve_references(v, results, nexts, totals) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_references(v, results, nexts, totals) for v in value]
    if not isinstance(value, str) or "$result" not in value:
        return value
    sources = {"result": results, "result_next": nexts, "result_total": totals}

    def substitute(match: re.Match[str]) -> str:
        found = _lookup(sources[match.group(1)], _PATH.findall(match.group(2)))
        return "" if found is None or isinstance(found, (dict, list)) else str(found)

    whole = _REFERENCE.fullmatch(value)
    if whole:
        found = _lookup(sources[whole.group(1)], _PATH.findall(whole.group(2)))
        if isinstance(found, (dict, list)):
            return found
    return _REFERENCE.sub(substitute, value)
