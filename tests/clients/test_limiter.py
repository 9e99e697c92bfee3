"""The vendor limiter: GCRA arithmetic on an injected clock, its late-wake rule, its keys, and the
shared schedule on a real SQLite store (several engines, as several processes would have).

The multi-process proof (SQLite and PostgreSQL) is test_limiter_processes.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.returns_sync.clients.limiter import (
    HEADROOM,
    LOOP_LIMIT,
    WHIPLASH_LIMIT,
    Pace,
    ProcessLimiter,
    SharedLimiter,
    VendorLimit,
    account_key,
)
from include.returns_sync.clients.loop import LoopHook
from include.returns_sync.clients.whiplash import WhiplashHook
from include.returns_sync.sandbox import Sandbox
from include.returns_sync.state import StateStore
from include.returns_sync.state.rate_limits import (
    MAX_BACKLOG_SECONDS,
    next_send,
    read_tat,
    reserve_send_slot,
)
from tests.clients.conftest import set_connection
from tests.support.clock import FakeBucketTime


def most_in_any_window(times: list[float], window: float) -> int:
    """The most sends any half-open window [t, t + window) holds (what the sandbox counts)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class TestGcraArithmetic:
    def test_an_idle_account_sends_at_once_and_the_next_one_interval_later(self) -> None:
        assert next_send(None, 100.0, 0.1) == (100.0, pytest.approx(100.1))
        assert next_send(0.0, 100.0, 0.1) == (100.0, pytest.approx(100.1))
        assert next_send(100.1, 100.02, 0.1) == (100.1, pytest.approx(100.2))

    def test_idle_time_is_not_saved_up_for_a_burst(self) -> None:
        # GCRA without burst tolerance: after a long pause the first send goes now, the second
        # still one interval later.
        send_at, tat = next_send(50.0, 100.0, 0.25)
        assert send_at == 100.0
        assert next_send(tat, 100.0, 0.25)[0] == pytest.approx(100.25)

    def test_a_reservation_absurdly_far_ahead_starts_afresh(self) -> None:
        assert next_send(100.0 + MAX_BACKLOG_SECONDS + 1, 100.0, 0.1)[0] == 100.0

    def test_a_negative_interval_is_refused(self) -> None:
        with pytest.raises(ValueError, match="interval"):
            next_send(None, 0.0, -1)

    @given(
        arrivals=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=80),
        limit=st.sampled_from([LOOP_LIMIT, WHIPLASH_LIMIT, VendorLimit(3, 0.5)]),
    )
    def test_requests_arriving_at_any_times_never_overfill_a_window(
        self, arrivals: list[float], limit: VendorLimit
    ) -> None:
        pace = Pace.for_rate("k", limit.default_rate_per_second, limit)
        tat: float | None = None
        sends = []
        for now in sorted(arrivals):
            send_at, tat = next_send(tat, now, pace.interval)
            assert send_at >= now
            sends.append(send_at)
        assert most_in_any_window(sends, limit.per_seconds) <= limit.requests
        # ... and even with every send up to the late tolerance late, in any pattern
        jittered = [at + (pace.late_tolerance if i % 2 else 0) for i, at in enumerate(sends)]
        assert most_in_any_window(jittered, limit.per_seconds) <= limit.requests


class TestPace:
    def test_the_defaults_are_92_percent_of_the_vendors_rate(self) -> None:
        assert HEADROOM == 0.92
        assert WHIPLASH_LIMIT.default_rate_per_second == pytest.approx(9.2)
        assert LOOP_LIMIT.default_rate_per_second == pytest.approx(4.6)

    def test_the_late_tolerance_is_half_the_margin_over_the_window(self) -> None:
        pace = Pace.for_rate("whiplash:x", 9.2, WHIPLASH_LIMIT)
        assert pace.interval == pytest.approx(1 / 9.2)
        assert pace.late_tolerance == pytest.approx((10 / 9.2 - 1) / 2)
        loop = Pace.for_rate("loop:x", 4.6, LOOP_LIMIT)
        assert loop.late_tolerance == pytest.approx((300 / 4.6 - 60) / 2)

    def test_at_the_vendors_own_rate_there_is_still_a_tolerance(self) -> None:
        assert Pace.for_rate("k", 10, WHIPLASH_LIMIT).late_tolerance == pytest.approx(0.025)

    def test_a_pace_needs_a_positive_rate(self) -> None:
        with pytest.raises(ValueError, match="rate_per_second"):
            Pace.for_rate("k", 0, WHIPLASH_LIMIT)


class TestProcessLimiter:
    def test_threads_at_one_instant_queue_one_interval_apart(self) -> None:
        fake = FakeBucketTime(frozen=True)
        limiter = ProcessLimiter(clock=fake.clock, sleep=fake.sleep)
        pace = Pace(key="k", interval=1 / 200, late_tolerance=1.0)
        gate = threading.Barrier(20)
        waits: list[float] = []
        lock = threading.Lock()

        def take() -> None:
            gate.wait()
            waited = limiter.acquire(pace)
            with lock:
                waits.append(waited)

        threads = [threading.Thread(target=take) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(waits) == pytest.approx([i / 200 for i in range(20)])

    def test_accounts_have_their_own_schedules(self) -> None:
        fake = FakeBucketTime()
        limiter = ProcessLimiter(clock=fake.clock, sleep=fake.sleep)
        a, b = Pace("a", 1.0, 0.5), Pace("b", 1.0, 0.5)
        assert [limiter.acquire(a), limiter.acquire(b), limiter.acquire(a)] == [0.0, 0.0, 1.0]

    def test_a_sender_that_wakes_too_late_gives_its_slot_up_and_reserves_again(self) -> None:
        fake = FakeBucketTime()
        overslept = [0.3]  # the first sleep overshoots by 0.3 s (a stalled process)

        def sleep(seconds: float) -> None:
            fake.sleep(seconds + (overslept.pop() if overslept else 0.0))

        limiter = ProcessLimiter(clock=fake.clock, sleep=sleep)
        pace = Pace("k", interval=0.1, late_tolerance=0.05)
        limiter.acquire(pace)  # at 1000.0
        start = fake.clock()
        limiter.acquire(pace)  # reserved 1000.1, woke 1000.4: too late, reserves again
        # the late slot was skipped, not used: the send happens at the fresh reservation
        assert fake.clock() - start == pytest.approx(0.4)
        assert fake.slept == pytest.approx([0.4])  # 0.1 + 0.3 overshoot; the new slot is due now
        assert limiter._tats["k"] == pytest.approx(1000.5)


class TestSharedLimiterOnSqlite:
    def test_two_engines_on_one_file_share_one_schedule(self, tmp_path: Path) -> None:
        now = [datetime(2026, 12, 6, 12, 0, tzinfo=UTC)]
        url = f"sqlite:///{tmp_path / 'state.db'}"
        first = StateStore.from_url(url, clock=lambda: now[0])
        second = StateStore.from_url(url, clock=lambda: now[0])
        first.migrate()
        try:
            reservations = [
                reserve_send_slot(store, "whiplash:abc", 0.1)
                for store in (first, second, first, second)
            ]
            waits = [r.wait_seconds for r in reservations]
            assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3])
            assert read_tat(second, "whiplash:abc") == pytest.approx(now[0].timestamp() + 0.4)
            assert read_tat(second, "loop:other") is None
        finally:
            first.dispose()
            second.dispose()

    def test_the_shared_limiter_sleeps_outside_the_transaction_until_its_slot(
        self, tmp_path: Path
    ) -> None:
        store = StateStore.from_url(f"sqlite:///{tmp_path / 'state.db'}")
        store.migrate()
        slept: list[float] = []
        limiter = SharedLimiter(store, sleep=slept.append)
        pace = Pace("whiplash:abc", interval=60.0, late_tolerance=3600.0)
        try:
            assert limiter.acquire(pace) == 0.0
            # the recorded sleep did not pass any time: the second send is a minute ahead
            waited = limiter.acquire(pace)
            assert 59.0 < waited <= 60.0 and slept == [waited]
            # while "sleeping", the store is free for any other writer
            reserve_send_slot(store, "loop:other", 1.0)
        finally:
            store.dispose()


class TestAccountKeys:
    def test_a_key_names_the_account_without_its_secret(self) -> None:
        key = account_key("loop", "secret-api-key")
        assert key.startswith("loop:") and len(key) == len("loop:") + 16
        assert "secret" not in key
        assert key == account_key("loop", "secret-api-key")
        assert key != account_key("loop", "another-key")

    def test_loop_hooks_are_keyed_by_their_api_key(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for conn_id, api_key in (("loop_a", "key-a"), ("loop_b", "key-b"), ("loop_c", "key-a")):
            set_connection(
                monkeypatch, conn_id, conn_type="loop", host=sandbox.loop_url, password=api_key
            )
        keys = [LoopHook(conn_id=c).account_key() for c in ("loop_a", "loop_b", "loop_c")]
        assert keys[0] != keys[1] and keys[0] == keys[2]
        assert all("key-" not in key for key in keys)
        assert LoopHook(conn_id="loop_b").loop_conn_id == "loop_b"

    def test_whiplash_merchants_of_one_account_share_its_key(
        self, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for conn_id, client in (("wl_a", "client-1"), ("wl_b", "client-2")):
            set_connection(
                monkeypatch,
                conn_id,
                conn_type="whiplash",
                host=sandbox.whiplash_url,
                login=client,
                password="secret",
            )
        acme = WhiplashHook(conn_id="wl_a", customer_id=11)
        globex = WhiplashHook(conn_id="wl_a", customer_id=12)
        other = WhiplashHook(conn_id="wl_b", customer_id=11)
        assert acme.account_key() == globex.account_key() != other.account_key()
        assert acme.account_key().startswith("whiplash:")
        assert acme.whiplash_conn_id == "wl_a"
        with pytest.raises(ValueError, match="customer_id"):
            WhiplashHook(conn_id="wl_a", customer_id=0)
