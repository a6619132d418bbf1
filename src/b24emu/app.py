"""The ASGI app: REST routes as a portal serves them, plus the `/_emulator/` control API."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from b24emu import errors
from b24emu.emulator import Emulator
from b24emu.events import CRM_EVENTS
from b24emu.fields import ENTITIES
from b24emu.params import parse_pairs
from b24emu.seed import seed_portal


class ConnectionDropped(Exception):
    """Injected fault: the server goes away mid-request (the client sees a broken connection)."""


def _json(payload: Any, status: int = 200) -> Response:
    """The answer as compact UTF-8 JSON: orjson (list pages are most of the emulator's CPU),
    json for what orjson cannot write (integers beyond 64 bits, keys that are not strings)."""
    try:
        body = orjson.dumps(payload)
    except TypeError:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json")


async def _read_params(request: Request) -> dict[str, Any]:
    pairs = list(parse_qsl(request.url.query, keep_blank_values=True))
    params: dict[str, Any] = parse_pairs(pairs) if pairs else {}
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "")
    if "json" in content_type or body.lstrip()[:1] in (b"{", b"["):
        try:
            decoded = json.loads(body)
        except ValueError:
            raise errors.RestError(
                "INVALID_REQUEST", "Request body is not valid JSON", 400
            ) from None
        if isinstance(decoded, dict):
            params.update(decoded)
        return params
    params.update(parse_pairs(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    return params


async def _serve(
    emulator: Emulator,
    request: Request,
    method: str,
    auth: str,
    user_id: int,
    params: dict[str, Any],
) -> Response:
    started = time.time()
    method = method.lower().removesuffix(".json")
    stats, faults = emulator.stats, emulator.faults
    if not emulator.bucket.admit():
        stats.rate_limited += 1
        return _json(errors.query_limit_exceeded().envelope(), 503)
    if faults.roll(faults.drop):
        stats.faults_injected += 1
        raise ConnectionDropped(method)
    if faults.roll(faults.error_503):
        stats.faults_injected += 1
        return _json(errors.query_limit_exceeded().envelope(), 503)
    if faults.roll(faults.error_500):
        stats.faults_injected += 1
        return _json(errors.internal_server_error().envelope(), 500)
    if faults.roll(faults.expired_token):
        stats.faults_injected += 1
        return _json(errors.expired_token().envelope(), 401)
    delay = faults.latency_ms / 1000 + (faults.slow_ms / 1000 if faults.roll(faults.slow) else 0.0)
    try:
        if method == "batch":
            result, spent = emulator.run_batch(params, auth, user_id)
            payload: dict[str, Any] = {"result": result}
        else:
            outcome, spent = emulator.run_command(method, params, auth, user_id)
            payload = {"result": outcome.result}
            if outcome.next is not None:
                payload["next"] = outcome.next
            if outcome.total is not None:
                payload["total"] = outcome.total
    except errors.RestError as exc:
        await emulator.pause(delay)
        return _json(exc.envelope(), exc.status)
    await emulator.pause(delay + spent)
    payload["time"] = emulator.time_block(started, method, spent)
    response = _json(payload)
    stats.bytes_sent += len(response.body)
    return response


def create_app(emulator: Emulator | None = None) -> FastAPI:
    """The emulator as an ASGI app; ``app.state.emulator`` is the portal behind it."""
    emu = emulator or Emulator()
    app = FastAPI(title="b24emu", description="A local Bitrix24 portal (REST emulator)")
    app.state.emulator = emu

    @app.exception_handler(errors.RestError)
    async def rest_error(request: Request, exc: errors.RestError) -> Response:
        return _json(exc.envelope(), exc.status)

    @app.api_route(
        "/rest/{user_id}/{token}/{method}", methods=["GET", "POST"], include_in_schema=False
    )
    async def webhook_call(user_id: str, token: str, method: str, request: Request) -> Response:
        emu.stats.http_calls += 1
        uid = emu.check_webhook(user_id, token)
        return await _serve(emu, request, method, "webhook", uid, await _read_params(request))

    @app.api_route("/rest/{method}", methods=["GET", "POST"], include_in_schema=False)
    async def app_call(method: str, request: Request) -> Response:
        emu.stats.http_calls += 1
        params = await _read_params(request)
        uid = emu.check_access_token(params.pop("auth", None) or _bearer(request))
        return await _serve(emu, request, method, "app", uid, params)

    @app.api_route("/oauth/token/", methods=["GET", "POST"], include_in_schema=False)
    async def oauth_token(request: Request) -> Response:
        params = await _read_params(request)
        grant_type = str(params.get("grant_type"))
        secret = params.get("refresh_token" if grant_type == "refresh_token" else "code")
        app_ = emu.exchange(
            grant_type, str(params.get("client_id")), str(params.get("client_secret")), str(secret)
        )
        return _json(_token_payload(emu, app_.access_token, app_.refresh_token))

    @app.get("/oauth/authorize/", include_in_schema=False)
    async def oauth_authorize(client_id: str, state: str = "") -> Response:
        """The user is signed in and agrees: back to the application's address with a code."""
        app_, code = emu.authorization_code(client_id)
        query = urlencode(
            {
                "code": code,
                "state": state,
                "domain": emu.portal.domain,
                "member_id": emu.portal.member_id,
                "scope": "crm,user",
                "server_domain": "oauth.bitrix.info",
            }
        )
        return Response(status_code=302, headers={"Location": f"{app_.redirect_uri}?{query}"})

    app.include_router(control_router(emu), prefix="/_emulator")
    return app


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None


def _token_payload(emu: Emulator, access: str, refresh: str) -> dict[str, Any]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 3600,
        "domain": emu.portal.domain,
        "member_id": emu.portal.member_id,
        "client_endpoint": f"https://{emu.portal.domain}/rest/",
        "server_endpoint": "https://oauth.bitrix.info/rest/",
        "status": "L",
    }


def control_router(emu: Emulator) -> APIRouter:
    """What the real portal does not have: seeding, faults, limits, stats, webhooks "in the UI"."""
    router = APIRouter(tags=["emulator control"])

    @router.post("/seed")
    async def seed(body: dict[str, Any]) -> dict[str, Any]:
        counts = {e: int(body.get(e, 0)) for e in (*ENTITIES, "item")}
        started = time.perf_counter()
        created = seed_portal(emu.portal, counts, int(body.get("seed", 1)))
        return {"created": created, "seconds": round(time.perf_counter() - started, 3)}

    @router.post("/reset")
    async def reset() -> dict[str, bool]:
        emu.reset()
        return {"reset": True}

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return emu.stats.as_dict() | {
            "records": {name: len(store.records) for name, store in emu.portal.stores.items()},
            "cpu_seconds": time.process_time(),  # the serving process's, for the benchmarks
        }

    @router.put("/limits")
    async def limits(body: dict[str, Any]) -> dict[str, Any]:
        for key in ("rate", "burst", "enabled"):
            if key in body:
                setattr(emu.bucket, key, type(getattr(emu.bucket, key))(body[key]))
        if "operating_budget" in body:
            emu.budget.budget = float(body["operating_budget"])
        if "operating_window" in body:
            emu.budget.window = float(body["operating_window"])
        if "cost" in body:
            for key, value in dict(body["cost"]).items():
                setattr(emu.cost, key, type(getattr(emu.cost, key))(value))
        return {
            "rate": emu.bucket.rate,
            "burst": emu.bucket.burst,
            "enabled": emu.bucket.enabled,
            "cost_enabled": emu.cost.enabled,
            "operating_budget": emu.budget.budget,
        }

    @router.put("/faults")
    async def faults(body: dict[str, float]) -> dict[str, float]:
        for key, value in body.items():
            if key != "rng" and hasattr(emu.faults, key):
                setattr(emu.faults, key, float(value))
        return {
            k: getattr(emu.faults, k)
            for k in (
                "error_503",
                "error_500",
                "drop",
                "expired_token",
                "missing_id",
                "slow",
                "slow_ms",
                "latency_ms",
                "latency_per_record_ms",
            )
        }

    @router.post("/userfields/{entity}")
    async def add_user_field(entity: str, body: dict[str, Any]) -> dict[str, Any]:
        _known(emu, entity)
        return emu.portal.add_user_field(
            entity,
            str(body["name"]),
            str(body["type"]),
            str(body.get("label", body["name"])),
            multiple=bool(body.get("multiple", False)),
            items=body.get("items"),
        )

    @router.delete("/userfields/{entity}/{name}")
    async def remove_user_field(entity: str, name: str) -> dict[str, bool]:
        _known(emu, entity)
        emu.portal.remove_user_field(entity, name)
        return {"removed": True}

    @router.patch("/userfields/{entity}/{name}")
    async def retype_user_field(entity: str, name: str, body: dict[str, Any]) -> dict[str, bool]:
        _known(emu, entity)
        emu.portal.retype_user_field(entity, name, str(body["type"]))
        return {"retyped": True}

    @router.patch("/records/{entity}/{record_id}")
    async def edit_record(entity: str, record_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """A person edits a record in the portal's UI: no REST limit is spent, events fire."""
        _known(emu, entity)
        emu.portal.update(entity, record_id, body)
        return {"updated": True}

    @router.post("/outbound-webhooks")
    async def outbound(body: dict[str, Any]) -> dict[str, Any]:
        events = tuple(str(e).upper() for e in body.get("events") or CRM_EVENTS)
        if any(event not in CRM_EVENTS for event in events):
            raise errors.event_not_found()
        emu.events.bind_outbound(str(body["handler"]), str(body["application_token"]), events)
        return {"events": list(events)}

    @router.get("/outbound-webhooks")
    async def outbound_list() -> list[dict[str, Any]]:
        return [
            {"event": b.event, "handler": b.handler, "offline": b.offline}
            for b in emu.events.bindings
        ]

    @router.post("/events/drain")
    async def drain() -> dict[str, int]:
        await emu.events.drain()
        return {"delivered": len(emu.events.delivered), "failed": emu.events.failed_deliveries}

    @router.post("/app")
    async def install_app(body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add a local application; with ``install_handler``, the portal POSTs ONAPPINSTALL there
        with the tokens, as on saving the local-application form."""
        app_ = emu.install_app(redirect_uri=str((body or {}).get("redirect_uri") or ""))
        tokens = _token_payload(emu, app_.access_token, app_.refresh_token) | {
            "application_token": emu.app_application_token,
        }
        handler = (body or {}).get("install_handler")
        if handler:
            emu.events.send_install(str(handler), tokens | {"user_id": emu.webhook_user_id})
        return tokens | {"client_id": app_.client_id, "client_secret": app_.client_secret}

    @router.post("/clock")
    async def clock(body: dict[str, float]) -> dict[str, str]:
        from datetime import timedelta

        emu.portal.clock.offset += timedelta(seconds=float(body.get("advance_seconds", 0)))
        return {"now": emu.portal.clock.iso()}

    return router


def _known(emu: Emulator, entity: str) -> None:
    """A classic entity or a smart process's items (``dynamic_<entityTypeId>``)."""
    if entity not in emu.portal.stores:
        known = ", ".join(emu.portal.stores)
        raise errors.bad_parameter(f"unknown entity {entity!r}; one of {known}")
