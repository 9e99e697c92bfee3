"""Several OS processes sending for one vendor account through one state store (SQLite file,
and PostgreSQL) never overfill any window the vendor counts, and one process alone gets >= 90 %
of the nominal rate.

Whiplash's real limit (10 requests in any second) and the hooks' default rate (92 %) are used
as they are, on the wall clock: nothing here is scaled or faked. The sandbox counts a sliding
window (`sandbox/rate_limit.py`): the (n+1)-th request within one `per_seconds` of the first is
refused, so the check is "no `requests + 1` sends within less than `per_seconds`".
The same check against the sandbox's real HTTP 429s is bench/bench_limiter.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from include.returns_sync.clients.limiter import WHIPLASH_LIMIT
from include.returns_sync.state import StateStore
from tests.clients.limiter_workers import run_senders
from tests.clients.test_limiter import most_in_any_window
from tests.support.postgres import pg_admin, pg_url  # noqa: F401 (fixtures)

KEY = "whiplash:0123456789abcdef"
RATE = WHIPLASH_LIMIT.default_rate_per_second
DURATION = 4.0


def achieved_rate(sent: list[float]) -> float:
    """Sends per second from the first send to the last."""
    ordered = sorted(sent)
    return (len(ordered) - 1) / (ordered[-1] - ordered[0])


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("pg_url"))


def _senders(url: str, workers: int) -> list[list[float]]:
    store = StateStore.from_url(url)
    store.migrate()
    store.dispose()
    return run_senders(
        url,
        KEY,
        workers=workers,
        rate_per_second=RATE,
        requests=WHIPLASH_LIMIT.requests,
        per_seconds=WHIPLASH_LIMIT.per_seconds,
        duration=DURATION,
    )


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_six_processes_together_never_overfill_a_window(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    per_process = _senders(_url(backend, tmp_path, request), workers=6)
    sent = [at for times in per_process for at in times]
    assert all(times for times in per_process), "every process got to send"
    assert most_in_any_window(sent, WHIPLASH_LIMIT.per_seconds) <= WHIPLASH_LIMIT.requests
    # together they still use the account's rate (each extra process adds no capacity)
    assert achieved_rate(sent) <= WHIPLASH_LIMIT.rate_per_second
    assert achieved_rate(sent) >= 0.85 * WHIPLASH_LIMIT.rate_per_second


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_process_alone_gets_at_least_90_percent_of_the_rate(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (sent,) = _senders(_url(backend, tmp_path, request), workers=1)
    assert achieved_rate(sent) >= 0.9 * WHIPLASH_LIMIT.rate_per_second
    assert most_in_any_window(sent, WHIPLASH_LIMIT.per_seconds) <= WHIPLASH_LIMIT.requests
