"""Call statistics per simulator: what the pipeline asked, which faults it got."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


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
