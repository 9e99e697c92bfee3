"""One store, many merchants: a store scoped by `for_merchant` sees and touches only its own rows.

Every test gives two merchants the SAME ids (Loop return id, Whiplash id, action, watermark
name, webhook dedup key): nothing may collide and nothing may leak from one to the other.
What belongs to a vendor account (OAuth token slots) is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Connection, event

from include.returns_sync.state import (
    InboxSignal,
    InboxStatus,
    StateStore,
    SyncStatus,
    WhiplashIdConflictError,
)
from include.returns_sync.vocabulary import ActionKind, ActionStatus
from tests.state.support import FakeClock

STALE = timedelta(minutes=5)


@pytest.fixture
def acme(store: StateStore) -> StateStore:
    return store.for_merchant("acme")


@pytest.fixture
def zeta(store: StateStore) -> StateStore:
    return store.for_merchant("zeta")


@contextmanager
def counting_statements(store: StateStore) -> Iterator[list[str]]:
    """The SQL statements the store's engine runs inside the block (SQLite's BEGIN aside)."""
    seen: list[str] = []

    def record(*args: object) -> None:
        if not str(args[2]).startswith("BEGIN"):
            seen.append(str(args[2]))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


# -- the scoped store --------------------------------------------------------------------------


def test_a_plain_store_is_the_default_merchant_and_for_merchant_shares_its_engine(
    store: StateStore, acme: StateStore
) -> None:
    assert store.merchant == "default"
    assert acme.merchant == "acme"
    assert acme.engine is store.engine
    assert store.merchant == "default"  # scoping made a new store, it did not change this one
    assert acme.for_merchant("default").merchant == "default"


@pytest.mark.parametrize("bad", ["", "Acme", "a-b", "a b", "é", "x" * 41, None, 7])
def test_for_merchant_refuses_an_id_the_merchants_file_could_not_hold(
    store: StateStore, bad: object
) -> None:
    with pytest.raises(ValueError, match=r"\[a-z0-9_\]\{1,40\}"):
        store.for_merchant(bad)  # type: ignore[arg-type]


def test_for_merchant_costs_no_database_round_trip(store: StateStore) -> None:
    with counting_statements(store) as seen:
        for n in range(100):
            store.for_merchant(f"m{n:02d}")
    assert seen == []


# -- sync records ------------------------------------------------------------------------------


def test_two_merchants_claim_and_record_the_same_loop_return_and_whiplash_id(
    acme: StateStore, zeta: StateStore, store: StateStore
) -> None:
    assert acme.claim_for_creation("1001", token="a", source="poll").won
    assert zeta.claim_for_creation("1001", token="z", source="webhook").won
    acme.record_created("1001", 9001, adopted=False, token="a")
    assert zeta.get_sync_records(["1001"])["1001"].status is SyncStatus.CLAIMED
    zeta.record_created("1001", 9001, adopted=True, token="z")

    a, z = acme.get_sync_records(["1001"])["1001"], zeta.get_sync_records(["1001"])["1001"]
    assert (a.merchant, a.status, a.source) == ("acme", SyncStatus.CREATED, "poll")
    assert (z.merchant, z.status, z.source) == ("zeta", SyncStatus.ADOPTED, "webhook")
    assert acme.find_by_whiplash_id([9001])[9001].merchant == "acme"
    assert store.get_sync_records(["1001"]) == {}  # the default merchant has none
    assert store.find_by_whiplash_id([9001]) == {}


def test_a_merchant_cannot_finish_or_release_another_merchants_claim(
    acme: StateStore, zeta: StateStore
) -> None:
    acme.claim_for_creation("1001", token="same-token", source="poll")
    assert zeta.release_claim("1001", "same-token") is False
    with pytest.raises(Exception, match="1001"):
        zeta.record_unmappable("1001", "UNKNOWN_SKU", token="same-token")
    assert acme.get_sync_records(["1001"])["1001"].status is SyncStatus.CLAIMED
    # zeta's own claim of the same id is independent and a DONE elsewhere does not block it
    acme.record_created("1001", 9001, adopted=False, token="same-token")
    assert zeta.claim_for_creation("1001", token="z", source="poll").won


def test_a_whiplash_id_stays_unique_within_one_merchant(acme: StateStore) -> None:
    acme.claim_for_creation("1001", token="a", source="poll")
    acme.record_created("1001", 9001, adopted=False, token="a")
    acme.claim_for_creation("1002", token="b", source="poll")
    with pytest.raises(WhiplashIdConflictError):
        acme.record_created("1002", 9001, adopted=False, token="b")


def test_retry_candidates_and_status_counts_are_per_merchant(
    acme: StateStore, zeta: StateStore, clock: FakeClock
) -> None:
    acme.claim_for_creation("1001", token="a", source="poll")
    acme.record_unmappable("1001", "UNKNOWN_SKU", token="a")
    zeta.claim_for_creation("1001", token="z", source="poll")
    zeta.claim_for_creation("1002", token="z", source="poll")
    clock.advance(timedelta(hours=1))
    assert acme.retry_candidates(10) == ["1001"]
    assert zeta.retry_candidates(10) == ["1001", "1002"]  # stale claims, zeta's only
    assert acme.sync_status_counts()[SyncStatus.UNMAPPABLE] == 1
    assert acme.sync_status_counts()[SyncStatus.CLAIMED] == 0
    assert zeta.sync_status_counts()[SyncStatus.CLAIMED] == 2


def test_merchant_of_whiplash_return_looks_across_merchants(
    store: StateStore, acme: StateStore, zeta: StateStore
) -> None:
    acme.claim_for_creation("1001", token="a", source="poll")
    acme.record_created("1001", 9001, adopted=False, token="a")
    zeta.claim_for_creation("2001", token="z", source="poll")
    zeta.record_created("2001", 9002, adopted=False, token="z")
    assert store.merchant_of_whiplash_return(9001) == "acme"
    assert zeta.merchant_of_whiplash_return(9001) == "acme"  # whatever the store's merchant
    assert acme.merchant_of_whiplash_return(9002) == "zeta"
    assert store.merchant_of_whiplash_return(9999) is None
    # two owners (two accounts reusing ids): no guess, the caller routes by other means
    zeta.claim_for_creation("2002", token="z2", source="poll")
    zeta.record_created("2002", 9001, adopted=False, token="z2")
    assert store.merchant_of_whiplash_return(9001) is None


# -- decisions and actions ---------------------------------------------------------------------


def test_two_merchants_decide_the_same_whiplash_return_each_once(
    acme: StateStore, zeta: StateStore
) -> None:
    _, a_new = acme.record_decision(9001, verdict="process", loop_return_id="1001")
    _, z_new = zeta.record_decision(9001, verdict="flag", reason_codes=["DAMAGED"])
    assert a_new and z_new
    again, inserted = acme.record_decision(9001, verdict="flag")
    assert not inserted and again.verdict == "process" and again.merchant == "acme"
    assert zeta.get_decisions([9001])[9001].reason_codes == ("DAMAGED",)
    assert acme.for_merchant("default").get_decisions([9001]) == {}


def test_two_merchants_act_on_the_same_loop_return_independently(
    acme: StateStore, zeta: StateStore
) -> None:
    assert acme.begin_action("1001", ActionKind.PROCESS).created
    assert zeta.begin_action("1001", ActionKind.PROCESS).created  # never blocked by acme's
    acme.finish_action("1001", ActionKind.PROCESS, ActionStatus.SENT)
    assert zeta.actions_for("1001")[ActionKind.PROCESS].status is ActionStatus.INTENT
    zeta.finish_action("1001", ActionKind.PROCESS, ActionStatus.FAILED, "E", "refused")
    assert acme.actions_for("1001")[ActionKind.PROCESS].status is ActionStatus.SENT
    # acme's `sent` is final; zeta's failure can be re-armed without touching acme's row
    seen = zeta.actions_for("1001")[ActionKind.PROCESS].attempts
    assert zeta.retry_action("1001", ActionKind.PROCESS, seen_attempts=seen).created
    assert not acme.retry_action("1001", ActionKind.PROCESS, seen_attempts=1).created
    assert acme.begin_action("1001", ActionKind.PROCESS).status is ActionStatus.SENT
    assert {m: a.merchant for m, a in acme.get_actions(["1001"])["1001"].items()} == {
        ActionKind.PROCESS: "acme"
    }
    assert acme.for_merchant("other").get_actions(["1001"]) == {}


def test_unfinished_decisions_look_at_the_same_merchants_actions_only(
    acme: StateStore, zeta: StateStore
) -> None:
    for merchant in (acme, zeta):
        merchant.record_decision(9001, verdict="process", loop_return_id="1001")
    acme.begin_action("1001", ActionKind.PROCESS)
    acme.finish_action("1001", ActionKind.PROCESS, ActionStatus.SENT)
    assert acme.unfinished_decisions() == {}
    assert list(zeta.unfinished_decisions()) == [9001]  # acme's sent Process is not zeta's


def test_waiting_dispositions_wait_for_the_same_merchants_process(
    acme: StateStore, zeta: StateStore
) -> None:
    acme.begin_action("1001", ActionKind.DISPOSITION)
    zeta.begin_action("1001", ActionKind.PROCESS)
    zeta.finish_action("1001", ActionKind.PROCESS, ActionStatus.SENT)
    assert acme.waiting_dispositions() == []  # zeta's Process does not release acme's
    assert zeta.waiting_dispositions() == []  # zeta planned none
    acme.begin_action("1001", ActionKind.PROCESS)
    acme.finish_action("1001", ActionKind.PROCESS, ActionStatus.SENT)
    assert acme.waiting_dispositions() == ["1001"]


# -- watermarks and account-keyed state --------------------------------------------------------


def test_each_merchant_has_its_own_watermarks(
    store: StateStore, acme: StateStore, zeta: StateStore, clock: FakeClock
) -> None:
    early, late = clock.now, clock.now + timedelta(hours=1)
    acme.advance_watermark("loop_poll", late)
    assert zeta.advance_watermark("loop_poll", early) == early  # not held back by acme's
    assert acme.get_watermark("loop_poll") == late
    assert store.get_watermark("loop_poll") is None


def test_oauth_tokens_belong_to_the_account_and_are_shared_by_its_merchants(
    store: StateStore, acme: StateStore, zeta: StateStore
) -> None:
    key = Fernet.generate_key().decode()
    acme.save_refresh_token("whiplash_default", "rotated-by-acme", key)
    assert zeta.load_refresh_token("whiplash_default", key) == "rotated-by-acme"
    assert store.load_refresh_token("whiplash_default", key) == "rotated-by-acme"
    assert acme.acquire_oauth_lease("whiplash_default", "acme-worker", STALE)
    assert not zeta.acquire_oauth_lease("whiplash_default", "zeta-worker", STALE)


# -- the webhook inbox -------------------------------------------------------------------------


def put(store: StateStore, key: str, source: str = "loop", **kw: str) -> tuple[int, bool]:
    return store.inbox_put(source, key, "label", "1001", {"id": "1001"}, **kw)


def test_the_same_delivery_key_is_one_event_per_merchant(
    acme: StateStore, zeta: StateStore
) -> None:
    a_id, a_new = put(acme, "label|1001|pre_transit")
    z_id, z_new = put(zeta, "label|1001|pre_transit")
    assert a_new and z_new and a_id != z_id
    assert put(acme, "label|1001|pre_transit") == (a_id, False)  # a retry of acme's delivery
    assert acme.inbox_get([a_id])[a_id].merchant == "acme"
    assert zeta.inbox_get([a_id])[a_id].merchant == "acme"  # by id: whatever the merchant


def test_an_event_stored_for_a_named_merchant_is_that_merchants(
    store: StateStore, acme: StateStore, zeta: StateStore
) -> None:
    # the Whiplash endpoint: one store, each event routed to its merchant
    event_id, inserted = put(store, "cr|9001", "whiplash", merchant="acme")
    assert inserted
    assert put(store, "cr|9001", "whiplash", merchant="acme") == (event_id, False)
    assert store.inbox_pending_count() == 0
    assert zeta.inbox_claim("whiplash", 10, "z", STALE) == []
    [claimed] = acme.inbox_claim("whiplash", 10, "a", STALE)
    assert (claimed.id, claimed.merchant) == (event_id, "acme")
    # the endpoint closes what it stored by id, even for another merchant than its store's
    assert store.inbox_done([event_id]) == 1
    assert acme.inbox_get([event_id])[event_id].status is InboxStatus.DONE
    with pytest.raises(ValueError, match="merchant id"):
        put(store, "cr|9002", "whiplash", merchant="Not Valid")


def test_claims_peeks_counts_and_signals_see_the_stores_merchant_only(
    acme: StateStore, zeta: StateStore, clock: FakeClock
) -> None:
    a_ids = [put(acme, f"a-{n}")[0] for n in range(3)]
    z_first = clock.now
    clock.advance(timedelta(seconds=5))
    z_ids = [put(zeta, f"z-{n}")[0] for n in range(2)]
    assert [e.id for e in acme.inbox_waiting("loop", 10)] == a_ids
    assert acme.inbox_pending_count() == 3 and zeta.inbox_pending_count("loop") == 2
    assert acme.inbox_signal("loop") == (3, a_ids[-1], z_first)
    assert zeta.inbox_signal("loop") == (2, z_ids[-1], clock.now)
    assert [e.id for e in zeta.inbox_claim(None, 10, "z", STALE)] == z_ids
    assert zeta.inbox_signal("loop")[0] == 0 and acme.inbox_signal("loop")[0] == 3
    # zeta's dead worker's events come back to zeta, never to acme
    clock.advance(STALE * 2)
    assert [e.id for e in acme.inbox_claim(None, 10, "a", STALE)] == a_ids
    assert [e.id for e in zeta.inbox_claim(None, 10, "z2", STALE)] == z_ids


def test_inbox_waiting_by_merchant_reads_every_merchants_signal_in_one_query(
    store: StateStore, acme: StateStore, zeta: StateStore, clock: FakeClock
) -> None:
    assert store.inbox_waiting_by_merchant(["loop", "whiplash"]) == {}
    a_first = clock.now
    a1, _ = put(acme, "a-1", "loop_return")
    clock.advance(timedelta(seconds=3))
    a2, _ = put(acme, "a-2", "whiplash")
    z1, _ = put(zeta, "z-1", "loop")
    put(zeta, "z-2", "whiplash")
    put(store, "d-1", "loop")
    store.inbox_done([put(store, "d-2", "whiplash")[0]])  # finished: not waiting
    zeta.inbox_claim("whiplash", 10, "z", STALE)  # claimed: not waiting either

    with counting_statements(store) as seen:
        receipts = acme.inbox_waiting_by_merchant(["loop_return", "whiplash"])
    assert len(seen) == 1
    assert receipts == {"acme": InboxSignal(2, a2, a_first)}
    labels = zeta.inbox_waiting_by_merchant(["loop"])
    assert labels == {
        "default": InboxSignal(1, labels["default"].newest_id, clock.now),
        "zeta": InboxSignal(1, z1, clock.now),
    }
    assert a1 < a2
    assert store.inbox_waiting_by_merchant([]) == {}
    with pytest.raises(ValueError, match="one string"):
        store.inbox_waiting_by_merchant("loop")
    with pytest.raises(ValueError, match="sources"):
        store.inbox_waiting_by_merchant(["loop", "shopify"])


# -- every scoped query is an index read -------------------------------------------------------

SCOPED_TABLES = ("sync_records", "decisions", "loop_actions", "watermarks", "webhook_inbox")


def _scoped_workload(store: StateStore, clock: FakeClock) -> None:
    """Every read and guarded write of a merchant's store, once."""
    store.claim_for_creation("1001", token="t", source="poll")
    store.record_created("1001", 9001, adopted=False, token="t")
    store.claim_for_creation("1002", token="t", source="poll")
    store.record_unmappable("1002", "UNKNOWN_SKU", token="t")
    store.claim_for_creation("1003", token="t", source="poll")
    store.release_claim("1003", "t")
    store.get_sync_records(["1001"])
    store.find_by_whiplash_id([9001])
    store.retry_candidates(10)
    store.sync_status_counts()
    store.merchant_of_whiplash_return(9001)
    store.record_decision(9001, verdict="process", loop_return_id="1001")
    store.record_decision(9001, verdict="process", loop_return_id="1001")
    store.get_decisions([9001])
    store.unfinished_decisions()
    store.begin_action("1001", ActionKind.PROCESS)
    store.finish_action("1001", ActionKind.PROCESS, ActionStatus.FAILED)
    store.retry_action("1001", ActionKind.PROCESS, seen_attempts=1)
    store.begin_action("1001", ActionKind.DISPOSITION)
    store.waiting_dispositions()
    store.get_actions(["1001"])
    store.advance_watermark("loop_poll", clock.now)
    store.get_watermark("loop_poll")
    put(store, "k-1")
    put(store, "k-1")
    store.inbox_waiting("loop", 10)
    store.inbox_signal("loop")
    store.inbox_pending_count()
    store.inbox_claim("loop", 10, "w", STALE)
    store.inbox_waiting_by_merchant(["loop", "whiplash"])


def test_every_scoped_query_reads_an_index_not_the_whole_table(
    acme: StateStore, zeta: StateStore, clock: FakeClock
) -> None:
    _scoped_workload(zeta, clock)  # another merchant's rows in every table
    captured: list[tuple[str, object]] = []

    def record(*args: object) -> None:
        statement = str(args[2])
        if statement.split(None, 1)[0].upper() in {"SELECT", "UPDATE", "DELETE"}:
            captured.append((statement, args[3]))

    event.listen(acme.engine, "before_cursor_execute", record)
    try:
        _scoped_workload(acme, clock)
    finally:
        event.remove(acme.engine, "before_cursor_execute", record)
    assert len(captured) >= 20

    canary = "SELECT loop_return_id FROM sync_records WHERE reason_detail = 'x'"
    with acme.engine.connect() as conn:
        assert _full_scans(conn, [(canary, ())]) != []  # the check sees a full scan
        assert _full_scans(conn, captured) == []


def _full_scans(conn: Connection, statements: list[tuple[str, object]]) -> list[str]:
    """The statements whose plan reads one of the merchant tables from end to end."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # tiny tables: make the planner show whether an index can serve
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    found: list[str] = []
    for statement, parameters in statements:
        prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
        params = parameters if parameters or not postgres else None
        rows = conn.exec_driver_sql(prefix + statement, params).all()  # type: ignore[arg-type]
        for row in rows:
            step = str(row[-1]).strip().removeprefix("->").strip()
            scan = "Seq Scan on " if postgres else "SCAN "
            if not step.startswith(scan):
                continue
            table = step.removeprefix(scan).split()[0]
            if table in SCOPED_TABLES and (postgres or "INDEX" not in step):
                found.append(f"{statement}\n  {step}")
    return found
