"""The sandbox's admin API and its command-line server.

Admin routes live under /_sandbox on the Loop server, without auth and outside the chaos
middleware, so another process (the demo, Airflow workers, a benchmark) can drive a running
sandbox: seed a day, move labels, receive packages, change faults and rate limits, read stats
and the expected truth.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from include.returns_sync.sandbox.common import ADMIN_PREFIX, FaultConfig
from include.returns_sync.sandbox.loop import LoopError

if TYPE_CHECKING:
    from include.returns_sync.sandbox.scenario import Sandbox


def add_admin_routes(app: FastAPI, sandbox: Sandbox) -> None:
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
        sandbox.seed_day(n, seed_day)
        created = [rid for rid in sandbox.truth.returns if rid not in before]
        return JSONResponse({"seeded": len(created), "return_ids": created})

    @router.post("/advance-labels")
    def advance_labels() -> Response:
        return JSONResponse({"moved": sandbox.advance_labels()})

    @router.post("/receive")
    async def receive(request: Request) -> Response:
        body = await _body(request)
        try:
            received = sandbox.receive_packages(body.get("mix"))
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
        limit = sandbox.loop_rate_limit()
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
        try:
            sandbox.loop.fail_processing(str(return_id), fail)
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
        try:
            return JSONResponse(sandbox.loop.subscribe_in_admin(topic, trigger, url))
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
    def truth() -> Response:
        return JSONResponse(sandbox.truth.to_dict())

    @router.get("/loop/actions")
    def loop_actions() -> Response:
        return JSONResponse({"actions": sandbox.loop.actions()})

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


def _bad(message: str) -> Response:
    return JSONResponse({"error": message}, status_code=400)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m include.returns_sync.sandbox",
        description="Serve the Loop + Whiplash simulators on 127.0.0.1 until interrupted.",
    )
    parser.add_argument("--seed", type=int, default=0, help="scenario seed (default 0)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--loop-port", type=int, default=8801)
    parser.add_argument("--whiplash-port", type=int, default=8802)
    parser.add_argument("--seed-day", type=int, default=0, metavar="N", help="seed N returns")
    parser.add_argument("--rate-limits", action="store_true", help="enforce vendor rate limits")
    parser.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="follow the harsher reading of the vendor docs (default: $RETURNS_SYNC_SANDBOX_STRICT)",
    )
    parser.add_argument(
        "--token-ttl-seconds",
        type=int,
        default=7200,
        help="Whiplash access-token lifetime (default 7200, as Whiplash; short ones force refreshes)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fault probability")
    parser.add_argument("--urls-file", type=Path, help="also write the URLs to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sandbox in the foreground; prints (and optionally writes) its URLs."""
    from include.returns_sync.sandbox.scenario import Sandbox

    args = parse_args(argv)
    faults = FaultConfig(rate=args.fault_rate, seed=args.seed) if args.fault_rate else None
    sandbox = Sandbox(
        seed=args.seed,
        rate_limits=args.rate_limits,
        faults=faults,
        strict=args.strict,
        token_ttl_seconds=args.token_ttl_seconds,
    )
    sandbox.start(args.loop_port, args.whiplash_port, host=args.host)
    if args.seed_day:
        sandbox.seed_day(args.seed_day)
    urls = {
        "loop_url": sandbox.loop_url,
        "whiplash_url": sandbox.whiplash_url,
        "admin_url": f"{sandbox.loop_host_url}{ADMIN_PREFIX}",
        "loop_api_key": sandbox.loop_api_key,
        "loop_webhook_secret": sandbox.loop_webhook_secret,
        "whiplash_client_id": sandbox.whiplash.client_id,
        "whiplash_client_secret": sandbox.whiplash.client_secret,
        "whiplash_refresh_token": sandbox.whiplash.current_refresh_token,
        "strict": sandbox.strict,
    }
    if args.urls_file:
        args.urls_file.write_text(json.dumps(urls, indent=2))
    print(json.dumps(urls, indent=2), flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        stopped.wait()
    finally:
        sandbox.stop()
    return 0
