"""Fixtures for the sandbox's own tests: the Loop simulator served alone on a frozen clock, and
a tiny HTTP receiver that records webhook deliveries."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from include.returns_sync.sandbox.chaos import ChaosMiddleware, with_chaos
from include.returns_sync.sandbox.clock import SandboxClock
from include.returns_sync.sandbox.loop import LoopBackend, build_loop_app
from include.returns_sync.sandbox.rate_limit import RateLimit
from include.returns_sync.sandbox.serving import RunningServer, serve_in_thread
from include.returns_sync.sandbox.stats import CallStats

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
API_KEY = "test-loop-key"


@dataclass
class LoopApi:
    """A Loop simulator served over HTTP, with handles on its state and its chaos gate."""

    url: str
    backend: LoopBackend
    clock: SandboxClock
    gate: ChaosMiddleware
    session: requests.Session

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=5, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=5, **kwargs)


class _Swappable:
    """An ASGI app that forwards to whichever app the current test installed, so one server
    serves the whole session (starting and stopping uvicorn per test costs ~0.2 s)."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def _loop_server() -> Iterator[tuple[_Swappable, RunningServer]]:
    holder = _Swappable()
    server = serve_in_thread(holder)
    yield holder, server
    server.stop()


@pytest.fixture
def loop_api(_loop_server: tuple[_Swappable, RunningServer]) -> Iterator[LoopApi]:
    """A fresh Loop simulator (frozen clock at NOW, rate limits off) behind the shared server."""
    holder, server = _loop_server
    clock = SandboxClock(NOW)
    backend = LoopBackend(clock=clock, api_key=API_KEY)
    gate = with_chaos(
        build_loop_app(backend), vendor="loop", rate_limit=RateLimit.loop(), stats=CallStats()
    )
    holder.app = gate
    session = requests.Session()
    session.headers["X-Authorization"] = API_KEY
    try:
        yield LoopApi(f"{server.url}/api/v1", backend, clock, gate, session)
    finally:
        session.close()
        backend.webhooks.close()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    """Records every POST; `wait_for(n)` blocks until n deliveries arrived."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout=timeout)
            return list(self.deliveries)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.arrived:
                receiver.deliveries.append(Delivery(self.path, dict(self.headers), body))
                receiver.arrived.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(f"http://127.0.0.1:{httpd.server_address[1]}/hooks/loop")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
