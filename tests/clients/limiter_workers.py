"""Worker processes that all send for one vendor account at once (separate interpreters).

Each worker has its own engine on the shared state store and its own `SharedLimiter`, like two
Celery workers or two task processes. After a common start it reserves and "sends" (records
`time.monotonic()`, which Linux keeps system-wide, so all processes share one time line) as
fast as the limiter lets it, for a fixed time.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any


def send_as_fast_as_allowed(
    state_url: str,
    key: str,
    rate_per_second: float,
    requests: int,
    per_seconds: float,
    duration: float,
    barrier: Any,
    results: Any,
) -> None:
    """Put the send times of this process on `results` (or the error that stopped it)."""
    from include.returns_sync.clients.limiter import Pace, SharedLimiter, VendorLimit
    from include.returns_sync.state import StateStore

    store = StateStore.from_url(state_url)
    limiter = SharedLimiter(store)
    pace = Pace.for_rate(key, rate_per_second, VendorLimit(requests, per_seconds))
    sent: list[float] = []
    try:
        barrier.wait(120)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            limiter.acquire(pace)
            sent.append(time.monotonic())
        results.put(sent)
    except Exception as error:  # reported to the parent, which fails the test
        results.put(f"{type(error).__name__}: {error}")
    finally:
        store.dispose()


PRELOAD = ("include.returns_sync.clients.limiter", "include.returns_sync.state")


def run_senders(
    state_url: str,
    key: str,
    *,
    workers: int,
    rate_per_second: float,
    requests: int,
    per_seconds: float,
    duration: float,
) -> list[list[float]]:
    """Run `workers` processes of `send_as_fast_as_allowed`; each one's send times."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    barrier = context.Barrier(workers)
    results = context.Queue()
    args = (state_url, key, rate_per_second, requests, per_seconds, duration, barrier, results)
    processes = [
        context.Process(target=send_as_fast_as_allowed, args=args, daemon=True)
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=180) for _ in processes]
        errors = [report for report in reports if isinstance(report, str)]
        assert not errors, errors
        return [report for report in reports if not isinstance(report, str)]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join(10)
