"""Infrastructure shared by the Loop and Whiplash simulators.

The simulators follow moto's shape: a backend object holds vendor state, a thin FastAPI app
translates HTTP into backend calls. This module holds what both vendors need around that core:
a controllable clock, fault injection and rate limiting as ASGI middleware (so the vendor apps
stay free of chaos code), call statistics, webhook signing and delivery, and a helper that serves
an app with uvicorn on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import queue
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/_sandbox"
FAULT_KINDS = frozenset({"429", "500", "502", "503", "timeout", "drop", "slow", "html"})
VENDORS = ("loop", "whiplash")


# --------------------------------------------------------------------------- clock


class SandboxClock:
    """The simulators' notion of "now" (UTC, timezone-aware).

    Real time by default; tests freeze it with `set` and move it with `advance`, so that "the
    last 24 hours" or "process after N seconds" are deterministic.
    """

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen_at = as_utc(frozen_at) if frozen_at else None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return datetime.now(UTC) + self._offset

    def set(self, moment: datetime) -> None:
        """Freeze the clock at `moment` (naive datetimes are taken as UTC)."""
        with self._lock:
            self._frozen_at = as_utc(moment)

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (a frozen clock stays frozen, at the later time)."""
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += delta
            else:
                self._offset += delta

    def unfreeze(self) -> None:
        """Go back to real time."""
        with self._lock:
            self._frozen_at = None
            self._offset = timedelta(0)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class FaultConfig:
    """What can go wrong, and how often, on every vendor request.

    `rate` is the probability that a request gets one of `kinds` instead of its real answer
    (nothing is changed in the backend). `after_commit_rate` applies to non-GET requests only:
    the backend applies the change, then the answer is lost as a 500 or a dropped connection, the
    case that makes exactly-once hard ("created in Whiplash, worker never heard back").
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("429", "500", "502", "503", "timeout", "drop", "slow", "html")
    timeout_seconds: float = 2.0
    slow_seconds: float = 0.2
    after_commit_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds) - FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {sorted(FAULT_KINDS)}")
        for name in ("rate", "after_commit_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be within [0, 1], got {value}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("FaultConfig.kinds is empty but rate > 0")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (the admin API); unknown keys are an error, not silently ignored."""
        allowed = {"rate", "kinds", "timeout_seconds", "slow_seconds", "after_commit_rate", "seed"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"unknown FaultConfig fields {unknown}; allowed: {sorted(allowed)}")
        values = dict(raw)
        if "kinds" in values:
            values["kinds"] = tuple(str(kind) for kind in values["kinds"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "timeout_seconds": self.timeout_seconds,
            "slow_seconds": self.slow_seconds,
            "after_commit_rate": self.after_commit_rate,
            "seed": self.seed,
        }


class RateLimit:
    """A request limit per window, enforced only while `enabled`; plus an on-demand 429 storm.

    Lenient (default): a sliding window, so a 429 ends as soon as the oldest request ages out.
    `fixed_window=True` (the strict reading of Loop, set by `Sandbox.set_strict`): Loop's
    one-minute window, so once the limit is reached every request is refused until that window
    ends. `storm(seconds)` refuses everything for `seconds` (default: one whole window), whatever
    `enabled` says, as when another client of the same key used the minute up; `arm_storm`
    starts one after a number of further requests, so a test can put it in the middle of a run.
    `window_seconds` is the knob that scales a vendor's window for tests (Loop: 60 s).

    Uses the monotonic wall clock, not `SandboxClock`: a frozen test clock must not freeze the
    limiter. `retry_after` is the header value sent with the 429 (None = no header, as Loop).
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        retry_after: str | None,
        enabled: bool = False,
        fixed_window: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("RateLimit needs limit >= 1 and window_seconds > 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after
        self.enabled = enabled
        self.fixed_window = fixed_window
        self._clock = clock
        self._hits: deque[float] = deque()
        self._window_start: float | None = None
        self._window_count = 0
        self._storm_until = 0.0
        self._storm_armed: tuple[int, float] | None = None
        self._lock = threading.Lock()

    @classmethod
    def loop(cls, enabled: bool = False, window_seconds: float = 60.0) -> RateLimit:
        """Loop: 300 requests per minute per key; its 429 documents no Retry-After header."""
        return cls(300, window_seconds, retry_after=None, enabled=enabled)

    @classmethod
    def whiplash(cls, enabled: bool = False) -> RateLimit:
        """Whiplash: 10 requests per second per account; we answer 429 with `Retry-After: 1`."""
        return cls(10, 1.0, retry_after="1", enabled=enabled)

    def storm(self, seconds: float | None = None) -> None:
        """Answer 429 to every request for `seconds` from now (default: one whole window)."""
        with self._lock:
            self._storm_until = self._clock() + (
                self.window_seconds if seconds is None else seconds
            )

    def arm_storm(self, after_requests: int, seconds: float | None = None) -> None:
        """Start a `storm(seconds)` once `after_requests` more requests were admitted."""
        if after_requests < 0:
            raise ValueError("after_requests must be >= 0")
        with self._lock:
            self._storm_armed = (
                after_requests,
                self.window_seconds if seconds is None else seconds,
            )

    def admit(self) -> bool:
        """Record one request; False when it is over the limit (it is then not counted)."""
        now = self._clock()
        with self._lock:
            if self._storm_armed is not None:
                left, seconds = self._storm_armed
                if left <= 0:
                    self._storm_armed = None
                    self._storm_until = now + seconds
                else:
                    self._storm_armed = (left - 1, seconds)
            if now < self._storm_until:
                return False
            if not self.enabled:
                return True
            if self.fixed_window:
                return self._admit_fixed(now)
            while self._hits and now - self._hits[0] >= self.window_seconds:
                self._hits.popleft()
            if len(self._hits) >= self.limit:
                return False
            self._hits.append(now)
            return True

    def _admit_fixed(self, now: float) -> bool:
        if self._window_start is None or now - self._window_start >= self.window_seconds:
            self._window_start, self._window_count = now, 0
        if self._window_count >= self.limit:
            return False
        self._window_count += 1
        return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._window_start, self._window_count = None, 0
            self._storm_until, self._storm_armed = 0.0, None


# --------------------------------------------------------------------------- stats


class CallStats:
    """Thread-safe counters: requests per (method, path template), faults per kind, statuses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()

    def record_request(self, method: str, template: str) -> None:
        with self._lock:
            self._requests[f"{method} {template}"] += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def record_status(self, status: int) -> None:
        with self._lock:
            self._statuses[str(status)] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: {"total", "requests": {"GET /path": n}, "faults", "statuses"}."""
        with self._lock:
            return {
                "total": sum(self._requests.values()),
                "requests": dict(self._requests),
                "faults": dict(self._faults),
                "statuses": dict(self._statuses),
            }

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._statuses.clear()


# --------------------------------------------------------------------------- chaos middleware

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
# A status code no HTTP server knows: uvicorn fails to format the status line after marking the
# response as started, writes nothing, and closes the socket when the app returns. That is the
# only portable way for an ASGI app to drop a connection without sending any bytes.
_UNSENDABLE_STATUS = 999


class ChaosMiddleware:
    """Rate limit + fault injection in front of a vendor app (admin routes under /_sandbox pass).

    `faults` and `rate_limit` are plain attributes so the orchestrator can change them while
    the server runs.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        vendor: str,
        faults: FaultConfig | None = None,
        rate_limit: RateLimit | None = None,
        stats: CallStats | None = None,
    ) -> None:
        if vendor not in VENDORS:
            raise ValueError(f"vendor must be one of {VENDORS}, got {vendor!r}")
        self.app = app
        self.vendor = vendor
        self.rate_limit = rate_limit or RateLimit(1, 1.0, retry_after=None, enabled=False)
        self.stats = stats or CallStats()
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
        if not self.rate_limit.admit():
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
            await self.app(scope, receive, _discard)
            await self._inject(after_commit, config, send)
            return
        await self.app(scope, receive, self._counting(send))

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
            await _drop(send)
        elif fault == "drop":
            await _drop(send)
        elif fault == "html":
            self.stats.record_status(502)
            await _send_raw(send, 502, _HTML_ERROR_PAGE, "text/html; charset=utf-8")
        else:
            retry_after = self.rate_limit.retry_after if fault == "429" else None
            await self._send_error(send, int(fault), retry_after=retry_after)

    async def _send_error(self, send: Send, status: int, *, retry_after: str | None) -> None:
        self.stats.record_status(status)
        body = json.dumps(_ERROR_BODIES[self.vendor][status]).encode()
        extra = [(b"retry-after", retry_after.encode())] if retry_after else []
        await _send_raw(send, status, body, "application/json", extra)

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
) -> ChaosMiddleware:
    """Wrap a vendor app with rate limiting, fault injection and call statistics."""
    return ChaosMiddleware(app, vendor=vendor, faults=faults, rate_limit=rate_limit, stats=stats)


async def _discard(message: Message) -> None:
    """A `send` that throws the app's real answer away (after-commit faults)."""


async def _drop(send: Send) -> None:
    try:
        await send({"type": "http.response.start", "status": _UNSENDABLE_STATUS, "headers": []})
    except Exception:  # the server refusing the status is the point
        return


async def _send_raw(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra_headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- webhooks


def sign_loop(secret: str, body: bytes) -> str:
    """Loop's `X-Loop-Signature`: base64 of HMAC-SHA256(secret, raw body)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_whiplash(secret: str, body: bytes) -> str:
    """Whiplash's `X-WHIPLASH-SIGNATURE`: hex HMAC-SHA256(secret, raw body)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookDelivery:
    """The outcome of one webhook POST (status None when the receiver could not be reached)."""

    url: str
    topic: str
    status: int | None
    error: str | None
    at: datetime
    body: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "topic": self.topic,
            "status": self.status,
            "error": self.error,
            "at": self.at.isoformat(),
        }


def deliver_webhook(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    topic: str = "",
    timeout: float = 2.0,
) -> WebhookDelivery:
    """POST one webhook; never raises, the result (status or error) is returned for the log."""
    at = datetime.now(UTC)
    try:
        response = requests.post(url, data=body, headers=dict(headers), timeout=timeout)
    except requests.RequestException as exc:
        return WebhookDelivery(url, topic, None, f"{type(exc).__name__}: {exc}", at, body)
    return WebhookDelivery(url, topic, response.status_code, None, at, body)


class WebhookDispatcher:
    """Delivers webhooks from one background thread, so the vendor API never waits on them.

    Deliveries are kept in order in `deliveries()`; `wait_idle()` lets tests wait for the queue
    to drain instead of sleeping.
    """

    def __init__(self, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str], str] | None] = queue.Queue()
        self._log: list[WebhookDelivery] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, url: str, body: bytes, headers: Mapping[str, str], topic: str = "") -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="sandbox-webhooks", daemon=True
                )
                self._thread.start()
        self._queue.put((url, body, dict(headers), topic))

    def deliveries(self) -> list[WebhookDelivery]:
        with self._lock:
            return list(self._log)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until every submitted webhook has been attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=self.timeout + 1)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                url, body, headers, topic = job
                delivery = deliver_webhook(url, body, headers, topic=topic, timeout=self.timeout)
                with self._lock:
                    self._log.append(delivery)
            finally:
                self._queue.task_done()


# --------------------------------------------------------------------------- serving


class RunningServer:
    """A uvicorn server running in a daemon thread; `stop()` shuts it down and joins."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request_stop(self) -> None:
        """Ask the server to exit without waiting (to stop several servers in parallel)."""
        self._server.should_exit = True

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=timeout)


def serve_in_thread(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
) -> RunningServer:
    """Serve `app` on host:port (0 = an ephemeral port) and return once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot serve the sandbox on {host}:{port}: {exc}") from exc
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host=host,
        port=bound_port,
        log_level="critical",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"sandbox server on {host}:{bound_port} did not start")
        time.sleep(0.005)
    return RunningServer(server, thread, host, bound_port)
