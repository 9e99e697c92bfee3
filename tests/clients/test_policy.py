"""The one retry policy, tested as pure values (no HTTP, no sleeping); the limiter has test_limiter.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from include.returns_sync.clients.errors import (
    AmbiguousWriteError,
    CredentialsUnavailable,
    VendorAuthError,
    VendorError,
    VendorRateLimited,
    VendorServerError,
    VendorTransportError,
    VendorValidationError,
)
from include.returns_sync.clients.policy import (
    RetryAfterOrBackoff,
    RetryPolicy,
)
from tests.clients.conftest import SleepRecorder


def failing_then_ok(*errors: VendorError) -> tuple[list[int], Callable[[], str]]:
    """An attempt function raising `errors` in turn, then answering "ok"; counts calls."""
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return calls, attempt


def rate_limited(retry_after: float | None = None) -> VendorRateLimited:
    return VendorRateLimited("loop", 429, None, "slow down", "GET", "/x", retry_after=retry_after)


def server_error(status: int = 500, retry_after: float | None = None) -> VendorServerError:
    return VendorServerError("loop", status, None, "boom", "POST", "/x", retry_after=retry_after)


def transport(sent: bool) -> VendorTransportError:
    return VendorTransportError("whiplash", "timed out", "POST", "/x", request_sent=sent)


class TestWhatIsRetried:
    def test_a_read_is_retried_through_429_5xx_and_timeouts_until_it_succeeds(self) -> None:
        calls, attempt = failing_then_ok(rate_limited(), server_error(502), transport(True))
        assert RetryPolicy.without_waits(max_attempts=4).call(attempt, idempotent=True) == "ok"
        assert len(calls) == 4

    def test_a_read_gives_up_after_max_attempts_with_the_last_error(self) -> None:
        calls, attempt = failing_then_ok(*[server_error(503)] * 5)
        with pytest.raises(VendorServerError):
            RetryPolicy.without_waits(max_attempts=3).call(attempt, idempotent=True)
        assert len(calls) == 3

    @pytest.mark.parametrize(
        "error",
        [
            VendorValidationError("loop", 422, None, "bad", "GET", "/x"),
            VendorAuthError("loop", 401, None, "no", "GET", "/x"),
            VendorError("loop", 405, None, "nope", "GET", "/x"),
        ],
    )
    def test_a_definite_client_error_is_never_retried(self, error: VendorError) -> None:
        calls, attempt = failing_then_ok(error)
        with pytest.raises(type(error)):
            RetryPolicy.without_waits().call(attempt, idempotent=True)
        assert len(calls) == 1

    def test_a_create_is_retried_after_429_because_it_was_not_applied(self) -> None:
        calls, attempt = failing_then_ok(rate_limited(), rate_limited())
        assert RetryPolicy.without_waits().call(attempt, idempotent=False) == "ok"
        assert len(calls) == 3

    def test_a_create_is_retried_when_the_connection_failed_before_sending(self) -> None:
        calls, attempt = failing_then_ok(transport(sent=False))
        assert RetryPolicy.without_waits().call(attempt, idempotent=False) == "ok"
        assert len(calls) == 2

    def test_a_create_is_retried_after_503_with_retry_after(self) -> None:
        calls, attempt = failing_then_ok(server_error(503, retry_after=1.0))
        assert RetryPolicy.without_waits().call(attempt, idempotent=False) == "ok"
        assert len(calls) == 2

    @pytest.mark.parametrize(
        "error", [server_error(500), server_error(503), transport(sent=True)], ids=str
    )
    def test_a_create_is_never_resent_after_a_failure_that_may_have_applied_it(
        self, error: VendorError
    ) -> None:
        calls, attempt = failing_then_ok(error)
        with pytest.raises(AmbiguousWriteError) as raised:
            RetryPolicy.without_waits().call(attempt, idempotent=False)
        assert len(calls) == 1
        assert raised.value.cause is error
        assert "look the resource up" in str(raised.value)

    def test_a_create_that_keeps_hitting_429_ends_rate_limited_not_ambiguous(self) -> None:
        calls, attempt = failing_then_ok(*[rate_limited()] * 9)
        with pytest.raises(VendorRateLimited):
            RetryPolicy.without_waits(max_attempts=3).call(attempt, idempotent=False)
        assert len(calls) == 3

    def test_missing_credentials_are_not_retried_again_nor_ambiguous(self) -> None:
        error = CredentialsUnavailable(transport(sent=True))
        calls, attempt = failing_then_ok(error)
        with pytest.raises(CredentialsUnavailable):
            RetryPolicy.without_waits().call(attempt, idempotent=False)
        assert len(calls) == 1

    def test_exceptions_that_are_not_vendor_errors_pass_through_untouched(self) -> None:
        def attempt() -> None:
            raise KeyError("bug")

        with pytest.raises(KeyError):
            RetryPolicy.without_waits().call(attempt, idempotent=True)


class TestHowLongItWaits:
    def test_retry_after_wins_over_backoff(self) -> None:
        recorder = SleepRecorder()
        _, attempt = failing_then_ok(rate_limited(retry_after=1.0), rate_limited(retry_after=3))
        RetryPolicy.without_waits(sleep=recorder).call(attempt, idempotent=True)
        assert recorder.waits == [1.0, 3.0]

    def test_retry_after_is_capped(self) -> None:
        recorder = SleepRecorder()
        policy = RetryPolicy(retry_after_cap_seconds=5.0, sleep=recorder)
        _, attempt = failing_then_ok(rate_limited(retry_after=3600))
        policy.call(attempt, idempotent=True)
        assert recorder.waits == [5.0]

    def test_without_a_hint_it_backs_off_exponentially_with_jitter_below_the_ceiling(self) -> None:
        recorder = SleepRecorder()
        policy = RetryPolicy(max_attempts=5, base_seconds=0.5, max_seconds=3.0, sleep=recorder)
        _, attempt = failing_then_ok(*[server_error()] * 4)
        policy.call(attempt, idempotent=True)
        ceilings = [0.5, 1.0, 2.0, 3.0]
        assert len(recorder.waits) == 4
        assert all(0 <= wait <= top for wait, top in zip(recorder.waits, ceilings, strict=True))

    @given(
        attempt=st.integers(min_value=1, max_value=40),
        base=st.floats(min_value=0, max_value=10),
        ceiling=st.floats(min_value=0, max_value=120),
        draw=st.floats(min_value=0, max_value=1),
    )
    def test_backoff_never_exceeds_its_ceiling(
        self, attempt: int, base: float, ceiling: float, draw: float
    ) -> None:
        wait = RetryAfterOrBackoff(base, ceiling, 60.0, rng=lambda: draw).backoff(attempt)
        assert 0 <= wait <= min(ceiling, base * 2 ** (attempt - 1)) + 1e-9

    def test_a_policy_rejects_nonsense_settings(self) -> None:
        with pytest.raises(ValueError, match="max_attempts"):
            RetryPolicy(max_attempts=0)
        with pytest.raises(ValueError, match="base_seconds"):
            RetryPolicy(base_seconds=-1)


class TestLoopsRateLimitStorm:
    """Loop's 429 has no Retry-After and a one-minute window: wait it out, bounded, logged."""

    def storm_policy(self, recorder: SleepRecorder) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=3,
            base_seconds=0.5,
            max_seconds=30.0,
            rate_limit_budget_seconds=75.0,
            rate_limit_max_wait_seconds=15.0,
            sleep=recorder,
        )

    def test_a_minute_of_429s_is_waited_out_past_max_attempts(self) -> None:
        recorder = SleepRecorder()
        storm: list[VendorError] = []

        # answers 429 until a minute of (recorded) waiting has passed, then succeeds
        def attempt() -> str:
            if sum(recorder.waits) < 60.0:
                storm.append(rate_limited())
                raise storm[-1]
            return "ok"

        assert self.storm_policy(recorder).call(attempt, idempotent=False) == "ok"
        assert len(storm) > 3  # beyond max_attempts
        assert 60.0 <= sum(recorder.waits) <= 75.0
        assert max(recorder.waits) <= 15.0

    def test_a_storm_longer_than_the_budget_fails_with_the_429(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        recorder = SleepRecorder()

        def attempt() -> str:
            raise rate_limited()

        with caplog.at_level("WARNING"), pytest.raises(VendorRateLimited):
            self.storm_policy(recorder).call(attempt, idempotent=True, describe="loop GET /x")
        assert sum(recorder.waits) == pytest.approx(75.0)
        waits_logged = [r for r in caplog.records if "rate-limit budget" in r.getMessage()]
        assert len(waits_logged) == len(recorder.waits)  # every wait is logged
        assert any(r.levelname == "ERROR" and "giving up" in r.getMessage() for r in caplog.records)

    def test_a_429_with_retry_after_keeps_the_attempt_limit(self) -> None:
        recorder = SleepRecorder()
        calls, attempt = failing_then_ok(*[rate_limited(retry_after=1.0)] * 5)
        with pytest.raises(VendorRateLimited):
            self.storm_policy(recorder).call(attempt, idempotent=True)
        assert len(calls) == 3

    def test_other_transient_failures_keep_the_attempt_limit(self) -> None:
        recorder = SleepRecorder()
        calls, attempt = failing_then_ok(*[server_error(502)] * 5)
        with pytest.raises(VendorServerError):
            self.storm_policy(recorder).call(attempt, idempotent=True)
        assert len(calls) == 3

    def test_scaling_shrinks_the_budget_with_the_waits(self) -> None:
        policy = RetryPolicy().scaled(0.01)
        assert policy.rate_limit_budget_seconds == pytest.approx(0.75)
        assert policy.rate_limit_max_wait_seconds == pytest.approx(0.15)
        assert policy.base_seconds == pytest.approx(0.005)
