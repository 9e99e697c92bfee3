"""Webhook delivery: one POST, and a background dispatcher so vendor APIs never wait on it."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests


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
