"""Shadow mode loses nothing (PRODUCT.md section 2.4), for each DAG, with `dag.test()`.

`RETURNS_SYNC_DRY_RUN=true` and the form's `dry_run` give the same run: it reads and reports,
writes nothing to Loop or Whiplash, leaves the webhook events waiting and the watermarks where
they were. Switched off, the first live run does everything the shadow period skipped, once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from include.returns_sync import runtime
from include.returns_sync.tasks.receipts import RECEIPT_WATERMARK
from include.returns_sync.tasks.rma import POLL_WATERMARK
from include.returns_sync.webhooks.inbox import accept
from include.returns_sync.webhooks.payloads import parse_loop, parse_whiplash
from tests.support.dag_harness import rmas_by_loop_id
from tests.webhooks.support import consumer_return_payload, label_payload

RMA_DAG = "loop_returns_to_whiplash"
RECEIPTS_DAG = "whiplash_receipts_to_loop"
BACKFILL_DAG = "loop_asn_backfill"
#: Differs between two runs of the same inputs (the window is read at run time).
RUN_SPECIFIC = ("window", "state", "folder")


def _report(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in RUN_SPECIFIC}


def _loop_label_event(store: Any, return_id: str, label_updated_at: str) -> int:
    payload = label_payload(return_id, "pre_transit", label_updated_at=label_updated_at)
    return accept(store, parse_loop(json.dumps(payload).encode())).inbox_id


def _whiplash_event(store: Any, consumer_return_id: int) -> int:
    payload = consumer_return_payload("consumer_return.completed", id=consumer_return_id)
    return accept(store, parse_whiplash(json.dumps(payload).encode())).inbox_id


def _waiting(store: Any, event_ids: list[int]) -> bool:
    """Untouched: still `new`, never claimed, never closed."""
    events = store.inbox_get(event_ids).values()
    return len(events) == len(event_ids) and all(
        str(e.status) == "new" and e.attempts == 0 and e.processed_at is None for e in events
    )


def _done(store: Any, event_ids: list[int]) -> bool:
    return all(str(e.status) == "done" for e in store.inbox_get(event_ids).values())


def _loop_actions(sandbox: Any) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for rid in sandbox.truth.returns:
        for entry in sandbox.loop.actions_for(rid):
            counts[(rid, entry["action"])] += 1
    return counts


def _vendor_writes(sandbox: Any) -> dict[str, int]:
    """Every request the sandbox saw that could change Loop or Whiplash (OAuth tokens aside)."""
    return {
        call: n
        for vendor in sandbox.stats().values()
        for call, n in vendor["requests"].items()
        if not call.startswith(("GET ", "HEAD ")) and "/oauth/token" not in call
    }


def _shadow_runs(
    run_dag: Any,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: Any,
    dag_id: str,
    conf: dict[str, Any],
    nothing_written: Callable[[], None],
) -> dict[str, Any]:
    """A run in shadow mode, then one with the form's dry run: after each, nothing is written
    (no vendor write, and `nothing_written` holds); both report the same. Returns the report."""
    sandbox.reset_stats()
    monkeypatch.setenv("RETURNS_SYNC_DRY_RUN", "true")
    by_deployment = run_dag(dag_id, conf)
    assert by_deployment["state"] == "success"
    assert _vendor_writes(sandbox) == {}
    nothing_written()
    monkeypatch.setenv("RETURNS_SYNC_DRY_RUN", "false")
    by_form = run_dag(dag_id, {**conf, "dry_run": True})
    assert by_form["state"] == "success"
    assert _vendor_writes(sandbox) == {}
    nothing_written()
    assert _report(by_deployment) == _report(by_form)
    assert by_deployment.get("dry_run") is True  # the report says what kind of run it was
    return by_deployment


def test_rma_dag_in_shadow_mode_creates_nothing_and_the_live_run_creates_every_rma(
    pipeline_env: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=40)
    store = runtime.state_store()
    announced = truth.rma_ids()[:5]
    events = [
        _loop_label_event(store, rid, sandbox.loop.get(rid)["label_updated_at"])
        for rid in announced
    ]

    def nothing_written() -> None:
        assert not rmas_by_loop_id(sandbox)
        assert _waiting(store, events)
        assert store.get_watermark(POLL_WATERMARK) is None
        assert store.get_sync_records(list(truth.returns)) == {}

    shadow = _shadow_runs(run_dag, monkeypatch, sandbox, RMA_DAG, {}, nothing_written)
    assert shadow["loop_return_ids"]["would_create"] == sorted(truth.rma_ids())

    live = run_dag(RMA_DAG)
    assert live["state"] == "success" and live["dry_run"] is False
    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids()) and set(rmas.values()) == {1}
    assert _done(store, events)
    assert store.get_watermark(POLL_WATERMARK) is not None
    # what the shadow run said it would do is exactly what the live run did
    said = {k.replace("would_create", "created"): v for k, v in shadow["loop_return_ids"].items()}
    assert live["loop_return_ids"] == said
    for loop_id, reason in truth.unmappable().items():
        assert loop_id in live["loop_return_ids"][f"unmappable:{reason}"]


def test_a_label_webhook_stored_in_shadow_mode_is_handled_by_the_first_live_run(
    pipeline_env: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = pipeline_env
    # the poll looks back one hour; the label moved three hours ago: only its webhook tells
    monkeypatch.setenv("RETURNS_SYNC_INITIAL_LOOKBACK_HOURS", "1")
    [rid] = sandbox.seed_missed(n=1)
    store = runtime.state_store()
    event = _loop_label_event(store, rid, sandbox.loop.get(rid)["label_updated_at"])

    sandbox.reset_stats()
    monkeypatch.setenv("RETURNS_SYNC_DRY_RUN", "true")
    shadow = run_dag(RMA_DAG)
    assert shadow["state"] == "success"
    assert _vendor_writes(sandbox) == {}
    assert shadow["loop_return_ids"] == {"would_create": [rid]}  # reported, from the inbox
    assert not rmas_by_loop_id(sandbox)
    assert _waiting(store, [event])

    monkeypatch.delenv("RETURNS_SYNC_DRY_RUN")
    live = run_dag(RMA_DAG)
    assert live["state"] == "success"
    assert live["loop_return_ids"] == {"created": [rid]}
    assert rmas_by_loop_id(sandbox) == Counter({rid: 1})
    assert _done(store, [event])
    assert str(store.get_sync_records([rid])[rid].source) == "webhook"


def test_receipts_dag_in_shadow_mode_acts_on_nothing_and_the_live_run_takes_every_action(
    pipeline_env: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=20)
    assert run_dag(RMA_DAG)["state"] == "success"
    sandbox.advance_labels()
    received = sandbox.receive_packages({"exact": 0.4, "missing": 0.3, "damaged": 0.3})
    store = runtime.state_store()
    events = [_whiplash_event(store, cr_id) for cr_id in sorted(received)[:4]]
    decided = [f.consumer_return_id for f in truth.returns.values() if f.expected_verdict]

    def nothing_written() -> None:
        assert not sum(_loop_actions(sandbox).values())
        assert _waiting(store, events)
        assert store.get_watermark(RECEIPT_WATERMARK) is None
        assert store.get_decisions(decided) == {}
        assert store.get_actions(list(truth.returns)) == {}

    shadow = _shadow_runs(run_dag, monkeypatch, sandbox, RECEIPTS_DAG, {}, nothing_written)
    assert sum(shadow["verdicts"].values()) == len(decided)
    assert set(shadow["actions"]) == {"dry_run"}

    live = run_dag(RECEIPTS_DAG)
    assert live["state"] == "success" and live["dry_run"] is False
    assert live["loop_return_ids"] == shadow["loop_return_ids"]  # the same verdicts
    assert _done(store, events)
    assert store.get_watermark(RECEIPT_WATERMARK) is not None
    actions = _loop_actions(sandbox)
    for rid, fact in truth.returns.items():
        if fact.expected_verdict == "process":
            assert (actions[(rid, "process")], actions[(rid, "flag")]) == (1, 0), rid
        elif fact.expected_verdict == "flag":
            assert (actions[(rid, "flag")], actions[(rid, "process")]) == (1, 0), rid
            assert len(sandbox.loop.notes_for(rid)) == 1, rid
        else:
            assert not [a for (r, a) in actions if r == rid], rid


def test_backfill_in_shadow_mode_creates_nothing_and_the_live_run_creates_every_rma(
    pipeline_env: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    sandbox = pipeline_env
    truth = sandbox.seed_day(n=20)
    now = datetime.now(UTC)
    window = {
        "start": (now - timedelta(days=2)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    store = runtime.state_store()

    def nothing_written() -> None:
        assert not rmas_by_loop_id(sandbox)
        assert store.get_sync_records(list(truth.returns)) == {}

    shadow = _shadow_runs(run_dag, monkeypatch, sandbox, BACKFILL_DAG, window, nothing_written)
    assert shadow["loop_return_ids"]["would_create"] == sorted(truth.rma_ids())

    live = run_dag(BACKFILL_DAG, window)
    assert live["state"] == "success"
    rmas = rmas_by_loop_id(sandbox)
    assert set(rmas) == set(truth.rma_ids()) and set(rmas.values()) == {1}
    said = {k.replace("would_create", "created"): v for k, v in shadow["loop_return_ids"].items()}
    assert live["loop_return_ids"] == said


def test_an_unreadable_shadow_setting_fails_the_run_before_anything_is_read(
    pipeline_env: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = pipeline_env
    truth = sandbox.seed_day(n=10)
    store = runtime.state_store()
    [rid] = truth.rma_ids()[:1]
    event = _loop_label_event(store, rid, sandbox.loop.get(rid)["label_updated_at"])
    sandbox.reset_stats()
    monkeypatch.setenv("RETURNS_SYNC_DRY_RUN", "shadow")  # neither true nor false
    assert run_dag(RMA_DAG)["state"] == "failed"
    assert sandbox.stats()["loop"]["total"] == sandbox.stats()["whiplash"]["total"] == 0
    assert _waiting(store, [event])
    assert store.get_watermark(POLL_WATERMARK) is None
