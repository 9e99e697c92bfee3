"""The sandbox's admin API: drive a running sandbox from another process.

Admin routes live under /_sandbox on the Loop server, without auth and outside the chaos
middleware, so another process (the demo, Airflow workers, a benchmark) can drive a running
sandbox: seed a day, move labels, receive packages, change faults and rate limits, read stats
and the expected truth. `Sandbox` (scenario.py) mounts them; this module knows it only as the
`AdminTarget` protocol, so the two modules do not import each other.

Several merchants: `GET /_sandbox/merchants` lists each merchant's keys; the scenario routes
(`/seed`, `/advance-labels`, `/receive`) and the Loop shop routes (`/loop/...`) take an optional
`merchant` (JSON body, or query parameter for GETs; default: every merchant for scenarios, the
first merchant's shop for shop routes); `/truth?merchant=` is one merchant's truth. An unknown
merchant is a 400 naming the ones served.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from include.returns_sync.sandbox.chaos import ADMIN_PREFIX
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.sandbox.loop import LoopBackend, LoopError
from include.returns_sync.sandbox.rate_limit import RateLimit
from include.returns_sync.sandbox.truth import SeedTruth


class AdminTarget(Protocol):
    """What the admin API drives: the scenario controls of `Sandbox`."""

    @property
    def truth(self) -> SeedTruth: ...

    @property
    def loop(self) -> LoopBackend: ...

    @property
    def strict(self) -> bool: ...

    @property
    def merchants(self) -> list[str]: ...

    def merchant_keys(self, merchant_id: str) -> dict[str, Any]: ...

    def shop(self, merchant_id: str | None = ...) -> LoopBackend: ...

    def seed_day(
        self, n: int = ..., day: date | None = ..., merchant: str | None = ...
    ) -> SeedTruth: ...

    def advance_labels(self, merchant: str | None = ...) -> int: ...

    def receive_packages(
        self, mix: dict[str, float] | None = ..., merchant: str | None = ...
    ) -> dict[int, str]: ...

    def set_faults(self, faults: FaultConfig, vendor: str | None = ...) -> None: ...

    def set_rate_limits(self, enabled: bool, vendor: str | None = ...) -> None: ...

    def set_strict(self, strict: bool) -> None: ...

    def loop_rate_limit(self, merchant: str | None = ...) -> RateLimit: ...

    def stats(self) -> dict[str, Any]: ...

    def reset_stats(self) -> None: ...


def add_admin_routes(app: FastAPI, sandbox: AdminTarget) -> None:
    """Mount the /_sandbox admin API on `app` (the Loop server)."""
    router = APIRouter(prefix=ADMIN_PREFIX)

    @router.post("/seed")
    async def seed(request: Request) -> Response:
        body = await _body(request)
        n = body.get("n", 200)
        day = body.get("day")
        if not isinstance(n, int) or n < 0:
            return _bad("n must be a non-negative integer")
        try:
            seed_day = date.fromisoformat(day) if day else None
        except (TypeError, ValueError):
            return _bad(f"day must be an ISO date (YYYY-MM-DD), got {day!r}")
        before = set(sandbox.truth.returns)
        merchant = body.get("merchant")
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        sandbox.seed_day(n, seed_day, merchant)
        created = [rid for rid in sandbox.truth.returns if rid not in before]
        return JSONResponse({"seeded": len(created), "return_ids": created})

    @router.post("/advance-labels")
    async def advance_labels(request: Request) -> Response:
        merchant = (await _body(request)).get("merchant")
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        return JSONResponse({"moved": sandbox.advance_labels(merchant)})

    @router.post("/receive")
    async def receive(request: Request) -> Response:
        body = await _body(request)
        merchant = body.get("merchant")
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        try:
            received = sandbox.receive_packages(body.get("mix"), merchant)
        except (TypeError, ValueError, AttributeError) as exc:
            return _bad(str(exc))
        return JSONResponse({"received": {str(k): v for k, v in received.items()}})

    @router.post("/faults")
    async def faults(request: Request) -> Response:
        body = await _body(request)
        vendor = body.pop("vendor", None)
        try:
            config = FaultConfig.from_dict(body)
            sandbox.set_faults(config, vendor)
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        return JSONResponse({"vendor": vendor or "both", "faults": config.to_dict()})

    @router.post("/rate-limits")
    async def rate_limits(request: Request) -> Response:
        body = await _body(request)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            return _bad('body must be {"enabled": true|false}')
        try:
            sandbox.set_rate_limits(enabled, body.get("vendor"))
        except ValueError as exc:
            return _bad(str(exc))
        return JSONResponse({"enabled": enabled})

    @router.post("/strict")
    async def strict(request: Request) -> Response:
        body = await _body(request)
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            return _bad('body must be {"enabled": true|false}')
        sandbox.set_strict(enabled)
        return JSONResponse({"strict": sandbox.strict})

    @router.post("/loop/rate-limit-storm")
    async def rate_limit_storm(request: Request) -> Response:
        """Loop answers 429 to everything for `seconds` (default: one window), now or after
        `after_requests` more requests; `window_seconds` rescales Loop's window first."""
        body = await _body(request)
        merchant = body.get("merchant")
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        limit = sandbox.loop_rate_limit(merchant)
        window, seconds = body.get("window_seconds"), body.get("seconds")
        after = body.get("after_requests", 0)
        numbers = [v for v in (window, seconds) if v is not None]
        if not all(isinstance(v, int | float) and v > 0 for v in numbers) or not (
            isinstance(after, int) and after >= 0
        ):
            return _bad("window_seconds and seconds must be > 0, after_requests >= 0")
        if window is not None:
            limit.window_seconds = float(window)
        limit.arm_storm(after, None if seconds is None else float(seconds))
        return JSONResponse({"window_seconds": limit.window_seconds, "after_requests": after})

    @router.post("/loop/fail-processing")
    async def fail_processing(request: Request) -> Response:
        """Strict: the next queued processing of `return_id` fails (`"fail": false` undoes it)."""
        body = await _body(request)
        return_id, fail = body.get("return_id"), body.get("fail", True)
        if not isinstance(return_id, str | int) or not isinstance(fail, bool):
            return _bad('body must be {"return_id": "<id>", "fail": true|false}')
        merchant = body.get("merchant")
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        try:
            sandbox.shop(merchant).fail_processing(str(return_id), fail)
        except LoopError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        return JSONResponse({"return_id": str(return_id), "fail": fail})

    @router.post("/loop/admin-webhooks")
    async def admin_webhook(request: Request) -> Response:
        """A Loop subscription made in Loop Admin (any topic, e.g. `return.processing`)."""
        body = await _body(request)
        topic, trigger, url = body.get("topic"), body.get("trigger"), body.get("url")
        if not all(isinstance(v, str) and v for v in (topic, trigger, url)):
            return _bad('body must be {"topic": ..., "trigger": ..., "url": ...}')
        merchant = body.get("merchant")
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        try:
            return JSONResponse(sandbox.shop(merchant).subscribe_in_admin(topic, trigger, url))
        except ValueError as exc:
            return _bad(str(exc))

    @router.get("/stats")
    def stats() -> Response:
        return JSONResponse(sandbox.stats())

    @router.post("/stats/reset")
    def reset_stats() -> Response:
        sandbox.reset_stats()
        return JSONResponse(sandbox.stats())

    @router.get("/truth")
    def truth(merchant: str | None = None) -> Response:
        if merchant is None:
            return JSONResponse(sandbox.truth.to_dict())
        if merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        return JSONResponse(sandbox.truth.for_merchant(merchant).to_dict())

    @router.get("/merchants")
    def merchants() -> Response:
        """Each merchant's keys: loop_api_key, loop_webhook_secret, whiplash_customer_id, ..."""
        return JSONResponse({m: sandbox.merchant_keys(m) for m in sandbox.merchants})

    @router.get("/loop/actions")
    def loop_actions(merchant: str | None = None) -> Response:
        if merchant is not None and merchant not in sandbox.merchants:
            return _unknown(sandbox, merchant)
        return JSONResponse({"actions": sandbox.shop(merchant).actions()})

    app.include_router(router)


async def _body(request: Request) -> dict[str, Any]:
    """The JSON object body (empty = {}); anything else is a 400 (the Loop app renders it)."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LoopError(400, {"error": "the admin API takes a JSON object body"})
    return body


def _unknown(sandbox: AdminTarget, merchant: Any) -> Response:
    return _bad(f"unknown merchant {merchant!r}; this sandbox serves {sandbox.merchants}")


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)
