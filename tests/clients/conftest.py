"""Fixtures for the vendor-client tests: connections as env vars, zero-wait hooks, a canned server.

Connections are given the way production reads them (`AIRFLOW_CONN_<ID>` JSON, through
`BaseHook.get_connection`). Hooks get a zero-wait retry policy and short timeouts so failure
paths run in milliseconds. `CannedServer` is a real HTTP server on 127.0.0.1 that answers from a
script, for the answers the sandbox cannot produce (malformed JSON on a 200, Retry-After dates).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from include.returns_sync.clients import policy
from include.returns_sync.clients.limiter import process_limiter
from include.returns_sync.clients.oauth import reset_token_cache
from include.returns_sync.clients.policy import RetryPolicy
from include.returns_sync.sandbox import Sandbox
from tests.support.clock import FakeBucketTime

#: Short enough to keep timeout tests fast, long enough for a loaded 2-core machine.
FAST_TIMEOUT = (0.5, 0.5)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Token cache and the process-local send schedules; give every test a clean one."""
    reset_token_cache()
    process_limiter().reset()
    yield
    reset_token_cache()
    process_limiter().reset()


@pytest.fixture
def bucket_time(monkeypatch: pytest.MonkeyPatch) -> FakeBucketTime:
    """The hooks' throttle on a fake clock: the test reads the waits it asked for."""
    fake = FakeBucketTime()
    monkeypatch.setattr(policy, "BUCKET_TIME", fake.source())
    return fake


@dataclass
class SleepRecorder:
    """A `sleep` for RetryPolicy that records waits and can run a callback after N of them."""

    waits: list[float] = field(default_factory=list)
    after: int | None = None
    then: Callable[[], None] | None = None

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.after is not None and len(self.waits) == self.after and self.then:
            self.then()


def zero_wait(max_attempts: int = 4, sleep: SleepRecorder | None = None) -> RetryPolicy:
    return RetryPolicy.without_waits(max_attempts=max_attempts, sleep=sleep)


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """Define an Airflow connection as a JSON environment variable."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def loop_connection(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    set_connection(
        monkeypatch,
        "loop_default",
        conn_type="http",
        host=sandbox.loop_url,
        password=sandbox.loop_api_key,
    )
    return sandbox


@pytest.fixture
def whiplash_connection(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    set_connection(
        monkeypatch,
        "whiplash_default",
        conn_type="whiplash",
        host=sandbox.whiplash_url,
        login="sandbox-client",
        password="sandbox-secret",
    )
    return sandbox


# --------------------------------------------------------------------------- canned server


@dataclass
class Canned:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class CannedServer:
    """Answers requests from a queue of `Canned` responses (the last one repeats)."""

    def __init__(self) -> None:
        self.script: list[Canned] = []
        self.seen: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                canned = server.script.pop(0) if len(server.script) > 1 else server.script[0]
                self.send_response(canned.status)
                self.send_header("Content-Type", canned.content_type)
                self.send_header("Content-Length", str(len(canned.body)))
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(canned.body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def answer(self, *responses: Canned) -> None:
        self.script = list(responses)

    def start(self) -> CannedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server = CannedServer().start()
    yield server
    server.stop()
