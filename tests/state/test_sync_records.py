"""The creation-claim protocol behind "exactly one RMA per Loop return"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.returns_sync.state import (
    ClaimLostError,
    ClaimOutcome,
    DuplicateRmaError,
    StateStore,
    SyncSource,
    SyncStatus,
    WhiplashIdConflictError,
)
from tests.state.support import FakeClock

STALE = timedelta(minutes=10)


def test_first_claim_inserts_a_claimed_record_and_wins(store: StateStore, clock: FakeClock) -> None:
    result = store.claim_for_creation(
        "5001",
        token="w1",
        source="webhook",
        stale_after=STALE,
        label_status="pre_transit",
        label_pre_transit_at=clock.now - timedelta(hours=1),
        run_id="run-1",
    )
    assert result.outcome is ClaimOutcome.WON and result.won
    assert not result.stale and result.previous_status is None
    record = result.record
    assert record.status is SyncStatus.CLAIMED
    assert record.claim_token == "w1"
    assert record.source is SyncSource.WEBHOOK
    assert record.attempts == 1
    assert record.label_status == "pre_transit"
    assert record.label_pre_transit_at == clock.now - timedelta(hours=1)
    assert record.first_seen_at == record.claimed_at == clock.now
    assert record.last_run_id == "run-1"
    assert store.get_sync_records(["5001"]) == {"5001": record}


def test_a_fresh_claim_by_someone_else_makes_the_second_caller_busy(store: StateStore) -> None:
    store.claim_for_creation("5002", token="w1", source="poll", stale_after=STALE)
    second = store.claim_for_creation("5002", token="w2", source="poll", stale_after=STALE)
    assert second.outcome is ClaimOutcome.BUSY and not second.won
    assert second.record.claim_token == "w1"


def test_the_holder_claiming_again_keeps_its_claim(store: StateStore, clock: FakeClock) -> None:
    store.claim_for_creation("5003", token="w1", source="poll", stale_after=STALE)
    clock.advance(timedelta(minutes=1))
    again = store.claim_for_creation("5003", token="w1", source="poll", stale_after=STALE)
    assert again.won and not again.stale
    assert again.record.claimed_at == clock.now
    assert again.record.attempts == 1


def test_a_stale_claim_is_taken_over_and_flagged_so_the_caller_looks_whiplash_up_first(
    store: StateStore, clock: FakeClock
) -> None:
    store.claim_for_creation("5004", token="dead-worker", source="poll", stale_after=STALE)
    clock.advance(STALE - timedelta(seconds=1))
    assert not store.claim_for_creation("5004", token="w2", source="poll", stale_after=STALE).won
    clock.advance(timedelta(seconds=2))
    takeover = store.claim_for_creation("5004", token="w2", source="backfill", stale_after=STALE)
    assert takeover.won and takeover.stale
    assert takeover.previous_status is SyncStatus.CLAIMED
    assert takeover.record.claim_token == "w2"
    assert takeover.record.attempts == 2
    assert takeover.record.source is SyncSource.POLL  # where we first saw it is kept


def test_once_created_every_later_claim_is_done_and_carries_the_whiplash_id(
    store: StateStore, clock: FakeClock
) -> None:
    store.claim_for_creation("5005", token="w1", source="poll", stale_after=STALE)
    created = store.record_created("5005", 900_005, adopted=False, token="w1", run_id="run-9")
    assert created.status is SyncStatus.CREATED and created.is_done
    assert created.whiplash_return_id == 900_005
    assert created.created_at == clock.now
    assert created.claim_token is None and created.claimed_at is None
    assert created.last_run_id == "run-9"
    clock.advance(timedelta(days=30))  # no amount of time makes a finished record stale
    later = store.claim_for_creation("5005", token="w2", source="backfill", stale_after=STALE)
    assert later.outcome is ClaimOutcome.DONE
    assert later.whiplash_return_id == 900_005


def test_adopting_an_existing_rma_records_adopted(store: StateStore) -> None:
    store.claim_for_creation("5006", token="w1", source="poll", stale_after=STALE)
    adopted = store.record_created("5006", 900_006, adopted=True, token="w1")
    assert adopted.status is SyncStatus.ADOPTED
    assert store.find_by_whiplash_id([900_006, 1]) == {900_006: adopted}


def test_record_created_is_idempotent_for_the_same_whiplash_id(store: StateStore) -> None:
    store.claim_for_creation("5007", token="w1", source="poll", stale_after=STALE)
    first = store.record_created("5007", 900_007, adopted=False, token="w1")
    assert store.record_created("5007", 900_007, adopted=False, token="w1") == first


def test_a_second_different_rma_for_one_return_is_refused_loudly(store: StateStore) -> None:
    store.claim_for_creation("5008", token="w1", source="poll", stale_after=STALE)
    store.record_created("5008", 900_008, adopted=False, token="w1")
    with pytest.raises(DuplicateRmaError, match=r"5008.*900008.*900009"):
        store.record_created("5008", 900_009, adopted=False, token="w1")
    assert store.get_sync_records(["5008"])["5008"].whiplash_return_id == 900_008


def test_one_whiplash_return_cannot_belong_to_two_loop_returns(store: StateStore) -> None:
    store.claim_for_creation("5009", token="w1", source="poll", stale_after=STALE)
    store.record_created("5009", 900_010, adopted=False, token="w1")
    store.claim_for_creation("5010", token="w1", source="poll", stale_after=STALE)
    with pytest.raises(WhiplashIdConflictError, match="900010 belongs to Loop return 5009"):
        store.record_created("5010", 900_010, adopted=True, token="w1")
    assert store.get_sync_records(["5010"])["5010"].status is SyncStatus.CLAIMED


def test_an_rma_reported_by_a_worker_whose_claim_went_stale_is_still_recorded(
    store: StateStore, clock: FakeClock
) -> None:
    store.claim_for_creation("5011", token="slow", source="poll", stale_after=STALE)
    clock.advance(STALE * 2)
    assert store.claim_for_creation("5011", token="w2", source="poll", stale_after=STALE).stale
    late = store.record_created("5011", 900_011, adopted=False, token="slow")
    assert late.status is SyncStatus.CREATED and late.whiplash_return_id == 900_011
    # the new holder finds it through Whiplash and adopts the same RMA: no error, no duplicate
    assert store.record_created("5011", 900_011, adopted=True, token="w2") == late


def test_record_created_without_any_claim_is_refused(store: StateStore) -> None:
    with pytest.raises(ClaimLostError, match=r"5012.*no sync record"):
        store.record_created("5012", 900_012, adopted=False, token="w1")


def test_unmappable_returns_are_retried_later_and_keep_their_reason_until_then(
    store: StateStore, clock: FakeClock
) -> None:
    store.claim_for_creation("5013", token="w1", source="poll", stale_after=STALE)
    record = store.record_unmappable("5013", "UNKNOWN_SKU", "SKU-9 not in Whiplash", token="w1")
    assert record.status is SyncStatus.UNMAPPABLE
    assert (record.reason_code, record.reason_detail) == ("UNKNOWN_SKU", "SKU-9 not in Whiplash")
    assert record.claim_token is None
    assert store.retry_candidates(10) == ["5013"]

    clock.advance(timedelta(hours=1))
    retry = store.claim_for_creation("5013", token="w2", source="poll", stale_after=STALE)
    assert retry.won and not retry.stale
    assert retry.previous_status is SyncStatus.UNMAPPABLE
    assert retry.record.attempts == 2
    assert retry.record.reason_code == "UNKNOWN_SKU"  # kept while the retry runs
    assert store.record_created("5013", 900_013, adopted=False, token="w2").reason_code is None


def test_failed_attempts_are_retried_too(store: StateStore) -> None:
    store.claim_for_creation("5014", token="w1", source="poll", stale_after=STALE)
    store.record_failed("5014", "WHIPLASH_5XX", "503 after retries", token="w1")
    retry = store.claim_for_creation("5014", token="w2", source="poll", stale_after=STALE)
    assert retry.won and retry.previous_status is SyncStatus.FAILED


def test_only_the_claim_holder_can_mark_a_return_unmappable(store: StateStore) -> None:
    store.claim_for_creation("5015", token="w1", source="poll", stale_after=STALE)
    with pytest.raises(ClaimLostError, match=r"5015.*claimed"):
        store.record_unmappable("5015", "UNKNOWN_SKU", None, token="intruder")
    store.record_unmappable("5015", "UNKNOWN_SKU", None, token="w1")
    # repeating the same call after success is harmless
    assert store.record_unmappable("5015", "UNKNOWN_SKU", None, token="w1").reason_code == (
        "UNKNOWN_SKU"
    )


def test_releasing_a_new_claim_forgets_the_return(store: StateStore) -> None:
    store.claim_for_creation("5016", token="w1", source="poll", stale_after=STALE)
    assert not store.release_claim("5016", "someone-else")
    assert store.release_claim("5016", "w1")
    assert store.get_sync_records(["5016"]) == {}
    assert not store.release_claim("5016", "w1")


def test_releasing_a_retry_puts_the_record_back_as_it_was(store: StateStore) -> None:
    store.claim_for_creation("5017", token="w1", source="poll", stale_after=STALE)
    store.record_unmappable("5017", "UNKNOWN_ORDER", None, token="w1")
    store.claim_for_creation("5017", token="w2", source="poll", stale_after=STALE)
    assert store.release_claim("5017", "w2")
    record = store.get_sync_records(["5017"])["5017"]
    assert (record.status, record.reason_code, record.claim_token) == (
        SyncStatus.UNMAPPABLE,
        "UNKNOWN_ORDER",
        None,
    )


def test_releasing_a_taken_over_stale_claim_leaves_it_visible_as_failed(
    store: StateStore, clock: FakeClock
) -> None:
    store.claim_for_creation("5018", token="dead", source="poll", stale_after=STALE)
    clock.advance(STALE * 2)
    store.claim_for_creation("5018", token="w2", source="poll", stale_after=STALE)
    assert store.release_claim("5018", "w2")
    record = store.get_sync_records(["5018"])["5018"]
    assert (record.status, record.reason_code) == (SyncStatus.FAILED, "CLAIM_RELEASED")


def test_retry_candidates_are_unmappable_failed_and_stale_claims_oldest_first(
    store: StateStore, clock: FakeClock
) -> None:
    for lid in ("a-1", "a-2", "a-3", "a-4", "a-5"):
        store.claim_for_creation(lid, token="w", source="poll", stale_after=STALE)
        clock.advance(timedelta(seconds=1))
    store.record_unmappable("a-2", "NO_ITEMS", None, token="w")
    store.record_failed("a-4", "WHIPLASH_5XX", None, token="w")
    store.record_created("a-5", 900_500, adopted=False, token="w")
    assert store.retry_candidates(10, stale_after=STALE) == ["a-2", "a-4"]  # a-1, a-3 fresh
    clock.advance(STALE)
    assert store.retry_candidates(10, stale_after=STALE) == ["a-1", "a-3", "a-2", "a-4"]
    assert store.retry_candidates(2, stale_after=STALE) == ["a-1", "a-3"]
    assert store.retry_candidates(10) == ["a-2", "a-4"]  # default: claims stale after 15 min


def test_status_counts_cover_every_status(store: StateStore) -> None:
    store.claim_for_creation("c-1", token="w", source="poll", stale_after=STALE)
    store.claim_for_creation("c-2", token="w", source="poll", stale_after=STALE)
    store.record_created("c-2", 900_600, adopted=True, token="w")
    assert store.sync_status_counts() == {
        SyncStatus.CLAIMED: 1,
        SyncStatus.CREATED: 0,
        SyncStatus.ADOPTED: 1,
        SyncStatus.UNMAPPABLE: 0,
        SyncStatus.FAILED: 0,
    }


def test_batch_reads_handle_more_ids_than_one_in_list(store: StateStore) -> None:
    ids = [f"b-{n}" for n in range(1200)]
    for lid in ids[::100]:
        store.claim_for_creation(lid, token="w", source="poll", stale_after=STALE)
    assert sorted(store.get_sync_records(ids)) == sorted(ids[::100])


def test_timestamps_come_back_aware_in_utc_whatever_zone_went_in(
    store: StateStore, clock: FakeClock
) -> None:
    tokyo = timezone(timedelta(hours=9))
    clock.now = datetime(2026, 3, 1, 21, 0, tzinfo=tokyo)
    record = store.claim_for_creation("t-1", token="w", source="poll", stale_after=STALE).record
    stored = store.get_sync_records(["t-1"])["t-1"]
    assert stored.first_seen_at == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert stored.first_seen_at.tzinfo is UTC and record.claimed_at is not None
    assert record.claimed_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"loop_return_id": 5001}, "loop_return_id"),
        ({"loop_return_id": ""}, "loop_return_id"),
        ({"token": ""}, "token"),
        ({"source": "carrier-pigeon"}, "source must be one of 'poll'"),
        ({"stale_after": 600}, "stale_after"),
        ({"label_pre_transit_at": datetime(2026, 1, 1)}, "label_pre_transit_at"),
    ],
)
def test_bad_claim_arguments_are_rejected_naming_the_argument(
    store: StateStore, kwargs: dict[str, object], named: str
) -> None:
    arguments: dict[str, object] = {
        "loop_return_id": "x-1",
        "token": "w",
        "source": "poll",
        "stale_after": STALE,
    } | kwargs
    with pytest.raises(ValueError, match=named):
        store.claim_for_creation(**arguments)  # type: ignore[arg-type]


def test_whiplash_ids_must_be_integers(store: StateStore) -> None:
    store.claim_for_creation("x-2", token="w", source="poll", stale_after=STALE)
    with pytest.raises(ValueError, match="whiplash_return_id"):
        store.record_created("x-2", "900", adopted=False, token="w")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="loop_return_ids"):
        store.get_sync_records("x-2")
