"""Rate limiting, fault injection and call statistics in front of a vendor app.

ASGI middleware, so the vendor apps stay free of chaos code: `with_chaos(app, vendor=...)`
answers 429 when the vendor's limit is reached, injects the faults of a `FaultConfig` (errors,
timeouts, dropped connections, HTML error pages, answers lost after the change was committed)
and counts every call. Admin routes under `ADMIN_PREFIX` pass untouched. A vendor that limits per
API key (Loop) gets one `RateLimit` per key (`keyed_limits`, chosen by the `key_header` of each
request); one that limits per account (Whiplash) has just `rate_limit`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from typing import Any

from include.returns_sync.sandbox.asgi import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    discard,
    drop,
    send_raw,
)
from include.returns_sync.sandbox.faults import FaultConfig
from include.returns_sync.sandbox.rate_limit import RateLimit
from include.returns_sync.sandbox.stats import CallStats

#: The sandbox's admin API (admin.py) lives under this prefix on the Loop server.
ADMIN_PREFIX = "/_sandbox"
VENDORS = ("loop", "whiplash")

_HTML_ERROR_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>The upstream server is unavailable.</p></body></html>"
)
_ERROR_BODIES: dict[str, dict[int, dict[str, Any]]] = {
    "loop": {
        429: {"message": "Too Many Attempts."},
        500: {"message": "Server Error"},
        502: {"message": "Bad Gateway"},
        503: {"message": "Service Unavailable"},
    },
    "whiplash": {
        429: {"error": "OverRateLimit", "message": "Rate limit exceeded"},
        500: {"message": "Internal Server Error"},
        502: {"message": "Bad Gateway"},
        503: {"message": "Service Unavailable"},
    },
}


class ChaosMiddleware:
    """Rate limit + fault injection in front of a vendor app (admin routes under /_sandbox pass).

    `faults` and `rate_limit` are plain attributes so the orchestrator can change them while
    the server runs. `keyed_limits` maps a value of the request header `key_header` (Loop's API
    key) to that key's own limit; requests with any other value use `rate_limit`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        vendor: str,
        faults: FaultConfig | None = None,
        rate_limit: RateLimit | None = None,
        stats: CallStats | None = None,
        key_header: str | None = None,
    ) -> None:
        if vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {VENDORS}, got {vendor!r}")
        self.app = app
        self.vendor = vendor
        self.rate_limit = rate_limit or RateLimit(1, 1.0, retry_after=None, enabled=False)
        self.stats = stats or CallStats()
        self.key_header = key_header.lower().encode() if key_header else None
        self.keyed_limits: dict[str, RateLimit] = {}
        self._rng_lock = threading.Lock()
        self.faults = faults or FaultConfig()

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        with self._rng_lock:
            self._faults = config
            self._rng = random.Random(config.seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        self.stats.record_request(method, self._template(scope))
        if not self.limit_for(scope).admit():
            self.stats.record_fault("rate_limited")
            await self._send_error(send, 429, retry_after=self.rate_limit.retry_after)
            return
        config = self.faults
        fault, after_commit = self._draw(config, method)
        if fault is not None:
            self.stats.record_fault(fault)
            if fault == "slow":
                await asyncio.sleep(config.slow_seconds)
            else:
                await self._inject(fault, config, send)
                return
        if after_commit is not None:
            self.stats.record_fault(f"after_commit_{after_commit}")
            await self.app(scope, receive, discard)
            await self._inject(after_commit, config, send)
            return
        await self.app(scope, receive, self._counting(send))

    def all_limits(self) -> list[RateLimit]:
        """The default limit and every key's own."""
        return [self.rate_limit, *self.keyed_limits.values()]

    def limit_for(self, scope: Scope) -> RateLimit:
        """The limit this request counts against: its key's own, else the default one."""
        if self.key_header is not None and self.keyed_limits:
            for name, value in scope.get("headers", ()):
                if name.lower() == self.key_header:
                    return self.keyed_limits.get(value.decode("latin-1"), self.rate_limit)
        return self.rate_limit

    def _draw(self, config: FaultConfig, method: str) -> tuple[str | None, str | None]:
        with self._rng_lock:
            fault = None
            if config.rate and self._rng.random() < config.rate:
                fault = self._rng.choice(config.kinds)
            after_commit = None
            if (
                fault in (None, "slow")
                and method not in ("GET", "HEAD", "OPTIONS")
                and config.after_commit_rate
                and self._rng.random() < config.after_commit_rate
            ):
                after_commit = self._rng.choice(("500", "drop"))
        return fault, after_commit

    async def _inject(self, fault: str, config: FaultConfig, send: Send) -> None:
        if fault == "timeout":
            await asyncio.sleep(config.timeout_seconds)
            await drop(send)
        elif fault == "drop":
            await drop(send)
        elif fault == "html":
            self.stats.record_status(502)
            await send_raw(send, 502, _HTML_ERROR_PAGE, "text/html; charset=utf-8")
        else:
            retry_after = self.rate_limit.retry_after if fault == "429" else None
            await self._send_error(send, int(fault), retry_after=retry_after)

    async def _send_error(self, send: Send, status: int, *, retry_after: str | None) -> None:
        self.stats.record_status(status)
        body = json.dumps(_ERROR_BODIES[self.vendor][status]).encode()
        extra = [(b"retry-after", retry_after.encode())] if retry_after else []
        await send_raw(send, status, body, "application/json", extra)

    def _counting(self, send: Send) -> Send:
        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.stats.record_status(int(message["status"]))
            await send(message)

        return counting_send

    def _template(self, scope: Scope) -> str:
        """The route's path template (/api/v1/warehouse/return/{return_id}/process), if known."""
        from starlette.routing import Match

        for route in getattr(self.app, "routes", ()):
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return str(getattr(route, "path", scope["path"]))
        return str(scope["path"])


def with_chaos(
    app: ASGIApp,
    *,
    vendor: str,
    faults: FaultConfig | None = None,
    rate_limit: RateLimit | None = None,
    stats: CallStats | None = None,
    key_header: str | None = None,
) -> ChaosMiddleware:
    """Wrap a vendor app with rate limiting, fault injection and call statistics."""
    return ChaosMiddleware(
        app,
        vendor=vendor,
        faults=faults,
        rate_limit=rate_limit,
        stats=stats,
        key_header=key_header,
    )
