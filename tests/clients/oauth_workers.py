"""Worker processes that all need a Whiplash token at the same moment (separate interpreters).

Each worker is a fresh interpreter with the connection from the inherited `AIRFLOW_CONN_*`
environment, its own `WhiplashHook` and its own engine on the shared state store, like two
Celery workers or two task processes. In every round the workers meet at a barrier, make one
API call (which needs a token), meet again, and sleep past the token's renewal time, so that in
the next round every one of them needs a new token at once.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any


def need_tokens_together(
    state_url: str,
    fernet_key: str,
    rounds: int,
    pause_seconds: float,
    renew_margin_seconds: float,
    barrier: Any,
    results: Any,
    connections: dict[str, str],
) -> None:
    """Run `rounds` rounds; put (pid, tokens per round, errors, grants) on `results`."""
    # The fork server keeps the environment it started with: take this test's connections.
    os.environ.update(connections)
    from include.returns_sync.clients.oauth import StateStoreTokenStore
    from include.returns_sync.clients.policy import RetryPolicy
    from include.returns_sync.clients.whiplash import WhiplashHook
    from include.returns_sync.state import StateStore

    store = StateStore.from_url(state_url)
    hook = WhiplashHook(
        token_store=StateStoreTokenStore(store, fernet_key),
        retry_policy=RetryPolicy.without_waits(4),
        rate_limit_per_second=0,
        timeout=10.0,
        renew_margin_seconds=renew_margin_seconds,
    )
    tokens: list[str | None] = []
    errors: list[str] = []
    try:
        for _ in range(rounds):
            barrier.wait(120)
            try:
                hook.notification_events()
                tokens.append(hook.oauth.bearer_token())
            except Exception as error:  # reported to the parent, which fails the test
                tokens.append(None)
                errors.append(f"{type(error).__name__}: {error}")
            barrier.wait(120)
            time.sleep(pause_seconds)
    finally:
        results.put((os.getpid(), tokens, errors, hook.oauth.grants))
        store.dispose()


PRELOAD = (
    "include.returns_sync.clients.whiplash",
    "include.returns_sync.state",
    "tests.clients.oauth_workers",
)


def run_workers(
    state_url: str,
    fernet_key: str,
    *,
    workers: int,
    rounds: int,
    pause_seconds: float,
    margin: float,
) -> list[tuple[int, list[str | None], list[str], int]]:
    """Spawn `workers` processes running `need_tokens_together`; their reports, in any order."""
    # forkserver: a fresh interpreter (no threads of the test process) imports Airflow once,
    # then forks each worker from it, instead of six interpreters importing it at once.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))
    barrier = context.Barrier(workers)
    connections = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")}
    results = context.Queue()
    processes = [
        context.Process(
            target=need_tokens_together,
            args=(
                state_url,
                fernet_key,
                rounds,
                pause_seconds,
                margin,
                barrier,
                results,
                connections,
            ),
            daemon=True,
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=180) for _ in processes]
        for process in processes:
            process.join(30)
        return reports
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
