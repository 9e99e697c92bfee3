"""Property: any interleaving of workers' claim-protocol calls behaves like a tiny model.

The model is the protocol written as plain Python; hypothesis drives both with random
sequences of claim / record_created / record_unmappable / release_claim / clock ticks from
three workers, and after every step the stored record must equal the model's. Whatever the
sequence: at most one holder, and a recorded Whiplash id never changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.returns_sync.state import (
    ClaimLostError,
    ClaimOutcome,
    DuplicateRmaError,
    StateStore,
    SyncStatus,
)
from tests.state.support import FakeClock

STALE = timedelta(minutes=10)
_examples = itertools.count(1)


@dataclass
class Model:
    status: SyncStatus | None = None
    holder: str | None = None
    claimed_at: datetime | None = None
    claimed_from: SyncStatus | None = None
    whiplash_id: int | None = None

    def claim(self, token: str, now: datetime) -> tuple[ClaimOutcome, bool]:
        if self.status is None:
            self.status, self.holder, self.claimed_at, self.claimed_from = (
                SyncStatus.CLAIMED,
                token,
                now,
                None,
            )
            return ClaimOutcome.WON, False
        if self.status in (SyncStatus.CREATED, SyncStatus.ADOPTED):
            return ClaimOutcome.DONE, False
        if self.status is SyncStatus.CLAIMED and self.holder == token:
            self.claimed_at = now
            return ClaimOutcome.WON, False
        assert self.claimed_at is not None or self.status is not SyncStatus.CLAIMED
        stale = self.status is SyncStatus.CLAIMED and self.claimed_at < now - STALE  # type: ignore[operator]
        if self.status is SyncStatus.CLAIMED and not stale:
            return ClaimOutcome.BUSY, False
        self.claimed_from, self.status = self.status, SyncStatus.CLAIMED
        self.holder, self.claimed_at = token, now
        return ClaimOutcome.WON, stale

    def created(self, token: str, whiplash_id: int) -> type[Exception] | None:
        if self.status is None:
            return ClaimLostError
        if self.status is SyncStatus.CREATED:
            return None if whiplash_id == self.whiplash_id else DuplicateRmaError
        # the holder normally; a lost claim still records the fact that the RMA exists
        self.status, self.whiplash_id, self.holder, self.claimed_at = (
            SyncStatus.CREATED,
            whiplash_id,
            None,
            None,
        )
        return None

    def unmappable(self, token: str) -> type[Exception] | None:
        if self.status is SyncStatus.CLAIMED and self.holder == token:
            self.status, self.holder, self.claimed_at = SyncStatus.UNMAPPABLE, None, None
            return None
        return None if self.status is SyncStatus.UNMAPPABLE else ClaimLostError

    def release(self, token: str) -> bool:
        if self.status is not SyncStatus.CLAIMED or self.holder != token:
            return False
        if self.claimed_from is None:
            self.status = None
        elif self.claimed_from in (SyncStatus.UNMAPPABLE, SyncStatus.FAILED):
            self.status = self.claimed_from
        else:
            self.status = SyncStatus.FAILED
        self.holder = self.claimed_at = None
        return True


steps = st.lists(
    st.tuples(
        st.sampled_from(["claim", "created", "unmappable", "release", "tick"]),
        st.integers(min_value=0, max_value=2),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
def test_property_the_claim_protocol_matches_its_model(
    store: StateStore, clock: FakeClock, steps: list[tuple[str, int]]
) -> None:
    example = next(_examples)
    lid = f"prop-{example}"
    model = Model()
    for op, worker in steps:
        token = f"w{worker}"
        if op == "tick":
            clock.advance(timedelta(minutes=3 + 4 * worker))
        elif op == "claim":
            result = store.claim_for_creation(lid, token=token, source="poll", stale_after=STALE)
            assert (result.outcome, result.stale) == model.claim(token, clock.now)
        elif op == "created":
            whiplash_id = example * 10 + worker
            expected_error = model.created(token, whiplash_id)
            try:
                store.record_created(lid, whiplash_id, adopted=False, token=token)
            except (ClaimLostError, DuplicateRmaError) as exc:
                assert type(exc) is expected_error
            else:
                assert expected_error is None
        elif op == "unmappable":
            expected_error = model.unmappable(token)
            try:
                store.record_unmappable(lid, "UNKNOWN_SKU", None, token=token)
            except ClaimLostError as exc:
                assert type(exc) is expected_error
            else:
                assert expected_error is None
        else:
            assert store.release_claim(lid, token) == model.release(token)

        record = store.get_sync_records([lid]).get(lid)
        if model.status is None:
            assert record is None
        else:
            assert record is not None
            assert (record.status, record.claim_token, record.whiplash_return_id) == (
                model.status,
                model.holder,
                model.whiplash_id,
            )
