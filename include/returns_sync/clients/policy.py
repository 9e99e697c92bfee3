"""The one retry policy and the one rate limiter every vendor call goes through.

Retry policy (`RetryPolicy`, built on tenacity):
- Retries what may succeed later: 429, 5xx, timeouts, connection failures, a gateway's HTML 5xx.
- Waits with jittered exponential backoff ("full jitter": a random wait up to
  `base * 2**attempt`, capped at `max_seconds`), except that a `Retry-After` header wins when the
  vendor sends one (Whiplash does on 429; Loop documents none).
- A 429 without `Retry-After` (Loop: 300 requests per minute per key, a one-minute window, no
  header) is waited out: past `max_attempts` the request is tried again, with growing waits
  ("equal jitter", at most `rate_limit_max_wait_seconds` each, every wait logged), until
  `rate_limit_budget_seconds` (75 s: a whole window and a margin) of waiting are used up; then
  the 429 is raised, with an ERROR log that says so. A storm of up to a minute is thus absorbed
  inside the task instead of failing it.
- Never blindly re-sends a non-idempotent request (an RMA create, a Loop process/flag/note, a
  webhook registration). Such a request is retried only when the failure proves the vendor did
  not act on it (429, 503 with Retry-After, a connection that failed before the request was
  sent). Any other transient failure after sending becomes `AmbiguousWriteError`, and the caller
  looks the resource up before trying again.

Rate limiting lives in `limiter.py` (one send schedule per vendor account, shared by every
process through the state store); this module only keeps its time source, `BUCKET_TIME`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity
from tenacity.wait import wait_base

from include.returns_sync.clients.errors import AmbiguousWriteError, VendorError

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryAfterOrBackoff(wait_base):
    """Wait what the vendor asked for (Retry-After, capped), else jittered exponential backoff."""

    def __init__(
        self,
        base_seconds: float,
        max_seconds: float,
        retry_after_cap_seconds: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.base_seconds = base_seconds
        self.max_seconds = max_seconds
        self.retry_after_cap_seconds = retry_after_cap_seconds
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(error, "retry_after", None)
        if hinted is not None:
            return min(float(hinted), self.retry_after_cap_seconds)
        return self.backoff(retry_state.attempt_number)

    def backoff(self, attempt_number: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(attempt-1))]."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempt_number - 1))
        return ceiling * self.rng()


def unhinted_rate_limit(error: BaseException | None) -> bool:
    """A 429 that says nothing about when to come back (Loop's)."""
    return (
        isinstance(error, VendorError)
        and error.status == 429
        and getattr(error, "retry_after", None) is None
    )


class RateLimitStorm(wait_base):
    """Waits through a 429 storm without Retry-After; other failures use `fallback`.

    Equal jitter (half fixed, half random) so each wait makes progress through the window, at
    most `max_wait` each, never past what is left of `budget` (seconds waited so far are
    tenacity's `idle_for`).
    """

    def __init__(
        self,
        fallback: RetryAfterOrBackoff,
        base_seconds: float,
        max_wait: float,
        budget: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.fallback = fallback
        self.base_seconds = base_seconds
        self.max_wait = max_wait
        self.budget = budget
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if not unhinted_rate_limit(error) or self.budget <= 0:
            return self.fallback(retry_state)
        attempt = retry_state.attempt_number
        ceiling = min(self.max_wait, self.base_seconds * 2 ** max(0, attempt - 1))
        wait = ceiling * (0.5 + 0.5 * self.rng())
        left = max(0.0, self.budget - retry_state.idle_for)
        return min(wait, left)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a vendor call. Immutable; one instance can be shared.

    `sleep` is injectable so tests can record waits instead of sleeping through them.
    """

    max_attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    retry_after_cap_seconds: float = 60.0
    #: Total waiting allowed through a storm of 429s without Retry-After (Loop's one-minute
    #: window, plus a margin); 0 turns the storm handling off (then `max_attempts` rules).
    rate_limit_budget_seconds: float = 75.0
    #: The longest single wait within such a storm (the window is probed at least this often).
    rate_limit_max_wait_seconds: float = 15.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    #: A hard stop even within the budget (waits of zero would otherwise never use it up).
    MAX_STORM_ATTEMPTS = 100

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        for name in (
            "base_seconds",
            "max_seconds",
            "retry_after_cap_seconds",
            "rate_limit_budget_seconds",
            "rate_limit_max_wait_seconds",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def without_waits(
        cls, max_attempts: int = 6, sleep: Callable[[float], None] | None = None
    ) -> RetryPolicy:
        """Same decisions, zero waits (tests); pass `sleep` to record what would have been waited."""
        return cls(
            max_attempts=max_attempts,
            base_seconds=0.0,
            max_seconds=0.0,
            retry_after_cap_seconds=0.0 if sleep is None else 3600.0,
            rate_limit_budget_seconds=0.0,
            sleep=sleep or (lambda _seconds: None),
        )

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every wait and budget multiplied by `factor` (tests shrink time)."""
        return RetryPolicy(
            max_attempts=self.max_attempts,
            base_seconds=self.base_seconds * factor,
            max_seconds=self.max_seconds * factor,
            retry_after_cap_seconds=self.retry_after_cap_seconds * factor,
            rate_limit_budget_seconds=self.rate_limit_budget_seconds * factor,
            rate_limit_max_wait_seconds=self.rate_limit_max_wait_seconds * factor,
            sleep=self.sleep,
        )

    def _stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """Stop after `max_attempts`, except while a 429 storm's waiting budget lasts."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        attempt = retry_state.attempt_number
        if attempt < self.max_attempts:
            return False
        if not unhinted_rate_limit(error) or self.rate_limit_budget_seconds <= 0:
            return True
        spent = retry_state.idle_for
        if spent < self.rate_limit_budget_seconds and attempt < self.MAX_STORM_ATTEMPTS:
            return False
        log.error(
            "Still rate limited (429 without Retry-After) after waiting %.1fs over %d attempts "
            "(budget %.0fs, RetryPolicy.rate_limit_budget_seconds); giving up",
            spent,
            attempt,
            self.rate_limit_budget_seconds,
        )
        return True

    def should_retry(self, error: BaseException, *, idempotent: bool) -> bool:
        """Retry transient failures; for a non-idempotent request only when not applied."""
        if not isinstance(error, VendorError) or isinstance(error, AmbiguousWriteError):
            return False
        if not error.transient:
            return False
        return idempotent or error.provably_not_applied

    def call(self, attempt: Callable[[], T], *, idempotent: bool, describe: str = "") -> T:
        """Run `attempt` under the policy; see the module docstring for what is retried.

        Raises the last `VendorError`, or `AmbiguousWriteError` when a non-idempotent request
        failed after it may have been applied.
        """
        retrying = tenacity.Retrying(
            stop=self._stop,
            wait=RateLimitStorm(
                RetryAfterOrBackoff(
                    self.base_seconds, self.max_seconds, self.retry_after_cap_seconds
                ),
                self.base_seconds,
                self.rate_limit_max_wait_seconds,
                self.rate_limit_budget_seconds,
            ),
            retry=tenacity.retry_if_exception(
                lambda error: self.should_retry(error, idempotent=idempotent)
            ),
            sleep=self.sleep,
            before_sleep=lambda state: _log_retry(state, describe, self),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except VendorError as error:
            if (
                not idempotent
                and error.transient
                and not error.provably_not_applied
                and not isinstance(error, AmbiguousWriteError)
            ):
                raise AmbiguousWriteError(error) from error
            raise


def _log_retry(state: tenacity.RetryCallState, describe: str, policy: RetryPolicy) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    if unhinted_rate_limit(error) and policy.rate_limit_budget_seconds > 0:
        log.warning(
            "%s rate limited (429 without Retry-After); attempt %d, waiting %.2fs "
            "(%.1fs of the %.0fs rate-limit budget used)",
            describe or "vendor call",
            state.attempt_number,
            wait,
            state.idle_for,
            policy.rate_limit_budget_seconds,
        )
        return
    log.warning(
        "%s failed (%s); attempt %d of %d, retrying in %.2fs",
        describe or "vendor call",
        getattr(error, "message", type(error).__name__),
        state.attempt_number,
        policy.max_attempts,
        wait,
    )


@dataclass(frozen=True)
class BucketTime:
    """The time source of the process-local rate limiter: a monotonic clock and a sleep."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


#: What `limiter.ProcessLimiter` uses unless given its own `clock`/`sleep`, read at every call.
#: Tests replace it with a fake time source (`monkeypatch.setattr(policy, "BUCKET_TIME", ...)`),
#: so no throttling test depends on the wall clock.
BUCKET_TIME = BucketTime()
