"""Races decided by constraints: threads and separate processes (as Airflow runs tasks).

Each race is repeated so a lucky interleaving cannot hide a second winner. Processes are
forked and build their own store from the URL, like Airflow task processes do.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.synchronize import Barrier as ProcessBarrier
from typing import Any

from include.returns_sync.state import ClaimOutcome, StateStore
from tests.state.support import FakeClock

ROUNDS = 20
STALE = timedelta(minutes=10)
FORK = multiprocessing.get_context("fork")


def run_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors:
        raise errors[0]


def run_processes(count: int, target: Callable[..., None], *args: Any) -> list[Any]:
    """Fork `count` workers running target(n, results, *args); return everything they put."""
    results: multiprocessing.Queue[Any] = FORK.Queue()
    workers = [FORK.Process(target=target, args=(n, results, *args)) for n in range(count)]
    for worker in workers:
        worker.start()
    collected: list[Any] = []
    while any(worker.is_alive() for worker in workers) or not results.empty():
        with contextlib.suppress(queue.Empty):
            collected.append(results.get(timeout=0.05))
    for worker in workers:
        worker.join(30)
    assert [worker.exitcode for worker in workers] == [0] * count
    return collected


# -- claim races ---------------------------------------------------------------------------


def test_threads_racing_to_claim_one_return_produce_exactly_one_winner(
    store: StateStore,
) -> None:
    barrier = threading.Barrier(4, timeout=10)
    outcomes: list[tuple[int, ClaimOutcome]] = []

    def worker(n: int) -> None:
        for round_ in range(ROUNDS):
            barrier.wait()
            result = store.claim_for_creation(
                f"thread-race-{round_}", token=f"t{n}", source="poll", stale_after=STALE
            )
            outcomes.append((round_, result.outcome))

    run_threads(4, worker)
    winners = Counter(round_ for round_, outcome in outcomes if outcome is ClaimOutcome.WON)
    assert winners == dict.fromkeys(range(ROUNDS), 1)
    assert len(outcomes) == 4 * ROUNDS


def _claim_in_process(
    n: int, results: multiprocessing.Queue[Any], url: str, barrier: ProcessBarrier
) -> None:
    store = StateStore.from_url(url)
    try:
        for round_ in range(ROUNDS):
            barrier.wait()
            result = store.claim_for_creation(
                f"process-race-{round_}", token=f"p{n}", source="poll", stale_after=STALE
            )
            results.put((round_, n, result.outcome.value))
    finally:
        store.dispose()


def test_processes_racing_to_claim_one_return_produce_exactly_one_winner(
    store: StateStore, db_url: str
) -> None:
    barrier = FORK.Barrier(3, timeout=10)
    outcomes = run_processes(3, _claim_in_process, db_url, barrier)
    assert len(outcomes) == 3 * ROUNDS
    winners = Counter(round_ for round_, _, outcome in outcomes if outcome == "won")
    assert winners == dict.fromkeys(range(ROUNDS), 1)
    records = store.get_sync_records(f"process-race-{r}" for r in range(ROUNDS))
    tokens = {lid: record.claim_token for lid, record in records.items()}
    for round_, n, outcome in outcomes:
        if outcome == "won":
            assert tokens[f"process-race-{round_}"] == f"p{n}"


def test_threads_racing_to_take_over_a_stale_claim_produce_exactly_one_winner(
    store: StateStore, clock: FakeClock
) -> None:
    for round_ in range(ROUNDS):
        store.claim_for_creation(f"stale-{round_}", token="dead", source="poll", stale_after=STALE)
    clock.advance(STALE * 2)
    barrier = threading.Barrier(4, timeout=10)
    winners: list[tuple[int, bool]] = []

    def worker(n: int) -> None:
        for round_ in range(ROUNDS):
            barrier.wait()
            result = store.claim_for_creation(
                f"stale-{round_}", token=f"t{n}", source="poll", stale_after=STALE
            )
            if result.won:
                winners.append((round_, result.stale))

    run_threads(4, worker)
    assert sorted(winners) == [(round_, True) for round_ in range(ROUNDS)]


# -- action and decision races -------------------------------------------------------------


def test_threads_racing_to_begin_one_action_create_one_intent(store: StateStore) -> None:
    barrier = threading.Barrier(4, timeout=10)
    created: list[int] = []

    def worker(n: int) -> None:
        for round_ in range(ROUNDS):
            barrier.wait()
            if store.begin_action(f"act-{round_}", "flag").created:
                created.append(round_)
            store.record_decision(9_000 + round_, verdict="flag", run_id=f"t{n}")

    run_threads(4, worker)
    assert sorted(created) == list(range(ROUNDS))
    decisions = store.get_decisions(range(9_000, 9_000 + ROUNDS))
    assert len(decisions) == ROUNDS


# -- inbox claim races ---------------------------------------------------------------------


def _fill_inbox(store: StateStore, count: int) -> set[int]:
    return {store.inbox_put("loop", f"dlv-{n}", "label", str(n), {"n": n})[0] for n in range(count)}


def test_threads_claiming_the_inbox_never_share_an_event(store: StateStore) -> None:
    expected = _fill_inbox(store, 120)
    taken: list[int] = []

    def worker(n: int) -> None:
        while batch := store.inbox_claim("loop", 7, f"t{n}", timedelta(minutes=5)):
            taken.extend(event.id for event in batch)

    run_threads(4, worker)
    assert sorted(taken) == sorted(expected)  # every event once: none lost, none doubled


def _drain_inbox_in_process(n: int, results: multiprocessing.Queue[Any], url: str) -> None:
    store = StateStore.from_url(url)
    try:
        while batch := store.inbox_claim(None, 5, f"p{n}", timedelta(minutes=5)):
            results.put([event.id for event in batch])
    finally:
        store.dispose()


def test_processes_claiming_the_inbox_never_share_an_event(store: StateStore, db_url: str) -> None:
    expected = _fill_inbox(store, 150)
    batches = run_processes(3, _drain_inbox_in_process, db_url)
    taken = [event_id for batch in batches for event_id in batch]
    assert sorted(taken) == sorted(expected)


def test_threads_of_two_merchants_racing_on_one_loop_return_give_one_winner_each(
    store: StateStore,
) -> None:
    """Same Loop return id in two merchants: one claim and one action intent per merchant."""
    barrier = threading.Barrier(6, timeout=10)
    claims: Counter[tuple[str, int]] = Counter()
    intents: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        scoped = store.for_merchant("acme" if n % 2 else "zeta")
        for round_ in range(ROUNDS):
            barrier.wait()
            claim = scoped.claim_for_creation(
                f"shared-{round_}", token=f"t{n}", source="poll", stale_after=STALE
            )
            intent = scoped.begin_action(f"shared-{round_}", "flag")
            with lock:
                claims[scoped.merchant, round_] += claim.won
                intents[scoped.merchant, round_] += intent.created

    run_threads(6, worker)
    expected = {(merchant, r): 1 for merchant in ("acme", "zeta") for r in range(ROUNDS)}
    assert claims == expected
    assert intents == expected
