"""`whiplash_receipts_to_loop` with `dag.test()`: receipts reconciled, Loop processed or flagged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

DAG_ID = "whiplash_receipts_to_loop"


def _sync_and_receive(sandbox: Any, run_dag: Any, n: int, mix: dict[str, float] | None = None):
    truth = sandbox.seed_day(n=n)
    assert run_dag("loop_returns_to_whiplash")["state"] == "success"
    sandbox.advance_labels()
    received = sandbox.receive_packages(mix)
    return truth, received


def _loop_actions(sandbox: Any) -> Counter[tuple[str, str]]:
    """(loop return id, action) -> how many times Loop was asked to do it."""
    counts: Counter[tuple[str, str]] = Counter()
    for rid in sandbox.truth.returns:
        for entry in sandbox.loop.actions_for(rid):
            counts[(rid, entry["action"])] += 1
    return counts


def test_each_discrepancy_gets_the_right_verdict_and_loop_action(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    mix = {"exact": 0.3, "missing": 0.2, "extra": 0.15, "damaged": 0.2, "wrong_sku": 0.15}
    truth, received = _sync_and_receive(sandbox, run_dag, 60, mix)
    assert set(received.values()) >= {"exact", "missing", "damaged"}
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"

    actions = _loop_actions(sandbox)
    for rid, fact in truth.returns.items():
        if fact.expected_verdict is None:
            continue
        verdict = fact.expected_verdict
        if verdict == "process":
            assert actions[(rid, "process")] == 1, rid
            assert actions[(rid, "flag")] == 0, rid
        elif verdict == "flag":
            assert actions[(rid, "flag")] == 1, rid
            assert actions[(rid, "process")] == 0, rid
            notes = sandbox.loop.notes_for(rid)
            assert len(notes) == 1 and len(notes[0]["content"]) < 255, rid
        else:  # skip: a return that is not open is never acted on
            assert not [a for (r, a) in actions if r == rid], rid
    for bucket, ids in summary["loop_return_ids"].items():
        verdict, _, codes = bucket.partition(":")
        for rid in ids:
            fact = truth.returns[rid]
            assert verdict == fact.expected_verdict, (rid, bucket, fact.discrepancy)
            if verdict == "flag":
                assert set(codes.split("|")) >= set(fact.expected_reasons), (rid, codes)


def test_a_rerun_sends_nothing_new(pipeline_env: Any, run_dag: Any) -> None:
    sandbox = pipeline_env
    _sync_and_receive(sandbox, run_dag, 30, {"exact": 0.5, "damaged": 0.5})
    run_dag(DAG_ID)
    before = _loop_actions(sandbox)
    again = run_dag(DAG_ID)
    assert again["state"] == "success"
    assert _loop_actions(sandbox) == before
    assert again["actions"] == {}


def test_a_non_open_return_is_not_actionable(pipeline_env: Any, run_dag: Any) -> None:
    sandbox = pipeline_env
    truth, received = _sync_and_receive(sandbox, run_dag, 20, {"exact": 1.0})
    victim = next(rid for rid, f in truth.returns.items() if f.consumer_return_id in received)
    sandbox.loop.set_state(victim, "cancelled")
    summary = run_dag(DAG_ID)
    assert any(
        victim in ids and "NOT_ACTIONABLE" in bucket
        for bucket, ids in summary["loop_return_ids"].items()
    )
    assert not sandbox.loop.actions_for(victim)


def test_a_consumer_return_we_did_not_create_is_unknown_and_untouched(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    _sync_and_receive(sandbox, run_dag, 10, {"exact": 1.0})
    item = sandbox.whiplash.add_item("STRANGER-1")
    import requests

    token = requests.post(
        f"{sandbox.whiplash_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.whiplash_client_id,
            "client_secret": sandbox.whiplash_client_secret,
            "scope": "app_manage",  # a strict sandbox's default scope is read-only
        },
        timeout=5,
    ).json()["access_token"]
    created = requests.post(
        f"{sandbox.whiplash_url}/api/v2/consumer_returns",
        json={
            "requires_label": False,
            "reference": "walk-in",
            "shipnotice_items_attributes": [
                {
                    "item_id": item["id"],
                    "quantity": 1,
                    "return_action": "refund",
                    "description": "x",
                }
            ],
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    ).json()
    sandbox.whiplash.receive(created["id"], [("STRANGER-1", 1, 0)])
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"
    assert summary["reason_codes"]["UNKNOWN_RETURN"] == 1


def test_dry_run_decides_but_sends_nothing(pipeline_env: Any, run_dag: Any) -> None:
    sandbox = pipeline_env
    _sync_and_receive(sandbox, run_dag, 20, {"exact": 0.5, "missing": 0.5})
    summary = run_dag(DAG_ID, {"dry_run": True})
    assert summary["state"] == "success"
    assert sum(summary["verdicts"].values()) > 0
    assert not sum(_loop_actions(sandbox).values())


def test_an_http_200_with_errors_from_loop_is_recorded_as_a_failure(
    pipeline_env: Any, run_dag: Any
) -> None:
    """Someone flagged the return in Loop admin: Process answers 200 with an errors body."""
    sandbox = pipeline_env
    truth, received = _sync_and_receive(sandbox, run_dag, 20, {"exact": 1.0})
    victim = next(
        rid
        for rid, f in truth.returns.items()
        if f.consumer_return_id in received and f.expected_verdict == "process"
    )
    sandbox.loop._record(victim).flagged = True  # the admin's flag, outside our pipeline
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"
    assert summary["actions"]["failed"] == 1
    import csv
    from pathlib import Path

    rows = list(csv.DictReader((Path(summary["folder"]) / "actions.csv").open()))
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert [(r["loop_return_id"], r["vendor_code"]) for r in failed] == [
        (victim, "UNPROCESSABLE_FLAGGED_RETURN")
    ]
    assert sandbox.loop.get(victim)["state"] == "open"


def test_dispositions_when_switched_on_go_once_per_return_after_its_action(
    pipeline_env: Any, run_dag: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """Optional dispositions: every unit of a processed or flagged return, once, after the action."""
    sandbox = pipeline_env
    criteria = tmp_path / "criteria.yaml"
    criteria.write_text("version: 1\ndispositions:\n  enabled: true\n")
    monkeypatch.setenv("RETURNS_SYNC_CRITERIA", str(criteria))
    mix = {"exact": 0.4, "missing": 0.3, "damaged": 0.3}
    truth, _ = _sync_and_receive(sandbox, run_dag, 30, mix)
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"

    wanted: dict[int, str] = {}  # the oracle: per SKU, good units, then damaged, then missing
    acted = 0
    for rid, fact in truth.returns.items():
        if fact.expected_verdict not in ("process", "flag"):
            continue
        acted += 1
        arrived = {sku.strip().upper(): [good, damaged] for sku, good, damaged in fact.received}
        record = sandbox.loop._record(rid)
        for line in sorted(record.line_items, key=lambda line: line.line_item_id):
            left = arrived.setdefault(line.sku.strip().upper(), [0, 0])
            if left[0]:
                left[0] -= 1
                wanted[line.line_item_id] = "back_to_stock"
            elif left[1]:
                left[1] -= 1
                wanted[line.line_item_id] = "resale_hold"
            else:
                wanted[line.line_item_id] = "missing"
    assert acted and set(wanted.values()) == {"back_to_stock", "resale_hold", "missing"}
    sent = {key: value["disposition_outcome"] for key, value in sandbox.loop.dispositions().items()}
    assert sent == wanted
    assert summary["dispositions"] == {"sent": acted}
    per_return = _loop_actions(sandbox)
    assert all(per_return[(rid, "disposition")] == 1 for rid, _ in per_return if _ == "disposition")
    for rid, action in per_return:
        if action == "disposition":  # only after the Process, or the Flag and its note
            assert sandbox.loop.actions_for(rid)[-1]["action"] == "disposition", rid

    again = run_dag(DAG_ID)
    assert again["dispositions"] == {}
    assert _loop_actions(sandbox) == per_return


def test_refused_loop_credentials_on_an_action_fail_the_run_then_it_finishes_once_fixed(
    pipeline_env: Any, run_dag: Any, monkeypatch: Any
) -> None:
    """A 403 on Process/Flag is a deployment problem: the run fails, nothing is given up."""
    from include.returns_sync.sandbox.loop_records import LoopError

    sandbox = pipeline_env
    _sync_and_receive(sandbox, run_dag, 20, {"exact": 0.5, "damaged": 0.5})
    forbidden = {"error": {"code": "403", "http_code": "GEN-FORBIDDEN", "message": "Forbidden."}}

    def refuse(*_: Any) -> Any:
        raise LoopError(403, forbidden)

    with monkeypatch.context() as refusing:
        refusing.setattr(sandbox.loop, "act", refuse)
        refusing.setattr(sandbox.loop, "add_note", refuse)
        assert run_dag(DAG_ID)["state"] == "failed"
        assert not _loop_actions(sandbox)
    # the operator fixes the key's permissions
    again = run_dag(DAG_ID)
    assert again["state"] == "success"
    actions = _loop_actions(sandbox)
    assert actions and set(actions.values()) == {1}


def test_a_revoked_loop_key_fails_the_receipts_run(pipeline_env: Any, run_dag: Any) -> None:
    """Reading the Loop return (Return Details) with a revoked key fails the run loudly."""
    sandbox = pipeline_env
    _sync_and_receive(sandbox, run_dag, 10, {"exact": 1.0})
    sandbox.loop.api_key = "revoked-key"
    summary = run_dag(DAG_ID)
    assert summary["state"] == "failed"
    assert not _loop_actions(sandbox)


# ------------------------------------------------------------------ Process is asynchronous


def _processed(truth: Any, received: dict[int, str]) -> list[str]:
    """Loop returns whose receipt arrived and whose expected verdict is process."""
    return sorted(
        rid
        for rid, fact in truth.returns.items()
        if fact.consumer_return_id in received and fact.expected_verdict == "process"
    )


def _process_status(rid: str) -> str:
    from include.returns_sync import runtime

    return str(runtime.state_store().actions_for(rid)["process"].status)


def test_processed_returns_end_confirmed_exactly_once(pipeline_env: Any, run_dag: Any) -> None:
    """Loop's `true` means queued: the run re-reads the returns it queued and records a Process
    done only once Loop shows the return closed."""
    sandbox = pipeline_env
    truth, received = _sync_and_receive(sandbox, run_dag, 20, {"exact": 1.0})
    processed = _processed(truth, received)
    assert processed
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"
    assert summary["actions"] == {"confirmed": len(processed)}
    actions = _loop_actions(sandbox)
    for rid in processed:
        assert actions[(rid, "process")] == 1, rid
        assert sandbox.loop.get(rid)["state"] == "closed", rid
        assert _process_status(rid) == "sent", rid
    again = run_dag(DAG_ID)
    assert again["state"] == "success" and again["actions"] == {}
    assert _loop_actions(sandbox) == actions


def test_a_queued_process_is_confirmed_by_a_later_run_and_not_resent_before_settling(
    pipeline_env: Any, run_dag: Any
) -> None:
    sandbox = pipeline_env
    sandbox.loop.process_delay = 3600  # Loop takes an hour to process
    truth, received = _sync_and_receive(sandbox, run_dag, 20, {"exact": 1.0})
    processed = _processed(truth, received)
    first = run_dag(DAG_ID)
    assert first["state"] == "success"
    assert first["actions"] == {"queued": len(processed)}
    assert {_process_status(rid) for rid in processed} == {"queued"}  # not done yet
    second = run_dag(DAG_ID)  # within the 30 min settle time: nothing is sent again
    assert second["actions"] == {"pending": len(processed)}
    sandbox.clock.advance(timedelta(hours=2))  # Loop has closed them by now
    third = run_dag(DAG_ID)
    assert third["actions"] == {"confirmed": len(processed)}
    actions = _loop_actions(sandbox)
    assert all(actions[(rid, "process")] == 1 for rid in processed)
    assert {_process_status(rid) for rid in processed} == {"sent"}


def test_a_rerun_after_settling_resends_an_unconfirmed_process_once(
    pipeline_env: Any, run_dag: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = pipeline_env
    sandbox.loop.process_delay = 10**7  # Loop never finishes (a lost queue entry)
    truth, received = _sync_and_receive(sandbox, run_dag, 12, {"exact": 1.0})
    processed = _processed(truth, received)
    assert run_dag(DAG_ID)["actions"] == {"queued": len(processed)}
    monkeypatch.setenv("RETURNS_SYNC_PROCESS_SETTLE_MINUTES", "0")  # "30 minutes later"
    resent = run_dag(DAG_ID)
    assert resent["actions"] == {"queued": len(processed)}
    monkeypatch.setenv("RETURNS_SYNC_PROCESS_SETTLE_MINUTES", "30")
    assert run_dag(DAG_ID)["actions"] == {"pending": len(processed)}
    actions = _loop_actions(sandbox)
    assert all(actions[(rid, "process")] == 2 for rid in processed)


@pytest.fixture
def loop_webhooks(pipeline_env: Any) -> Iterator[str]:
    """Our webhook endpoint on 127.0.0.1 (same state store), subscribed in the sandbox's Loop
    to `return.closed` and, as in Loop Admin, to `return.processing.failed`."""
    from include.returns_sync import runtime
    from include.returns_sync.sandbox.serving import serve_in_thread
    from include.returns_sync.webhooks.app import WebhookReceiver, create_app
    from include.returns_sync.webhooks.secrets import SigningKeys, StaticSecrets

    sandbox = pipeline_env
    secrets = StaticSecrets({"loop": SigningKeys((sandbox.loop_webhook_secret,))})
    server = serve_in_thread(create_app(WebhookReceiver(runtime.state_store, secrets)))
    url = f"{server.url}/webhooks/loop"
    sandbox.loop.subscribe_in_admin("return", "return.closed", url)
    sandbox.loop.subscribe_in_admin("return.processing", "return.processing.failed", url)
    try:
        yield url
    finally:
        server.stop()


def test_a_return_whose_processing_fails_is_reported_process_failed_and_the_run_alerts(
    pipeline_env: Any, run_dag: Any, loop_webhooks: str
) -> None:
    from tests.support.dag_harness import failure_alerts

    sandbox = pipeline_env
    truth, received = _sync_and_receive(sandbox, run_dag, 20, {"exact": 1.0})
    processed = _processed(truth, received)
    victim = processed[0]
    sandbox.loop.fail_processing(victim)  # strict only: Loop's background processing fails
    first = run_dag(DAG_ID)
    assert first["state"] == "success"
    assert sandbox.loop.webhooks.wait_idle()
    with failure_alerts() as alerts:
        second = run_dag(DAG_ID)  # takes Loop's webhooks
    actions = _loop_actions(sandbox)
    if not sandbox.strict:  # lenient: processing never fails
        assert first["actions"] == {"confirmed": len(processed)}
        assert second["state"] == "success" and not alerts
        assert all(actions[(rid, "process")] == 1 for rid in processed)
        return
    assert first["actions"] == {"confirmed": len(processed) - 1, "queued": 1}
    assert second["state"] == "failed"
    assert second["process_failed"] == [victim]
    assert second["failed_actions"] == {"PROCESS_FAILED": [victim]}
    [alert] = [a for a in alerts if "PROCESS_FAILED" in a]
    assert victim in alert and "task=reconcile_and_act" in alert
    assert _process_status(victim) == "failed"  # not recorded as done
    assert sandbox.loop.get(victim)["state"] == "open"
    # never re-sent, and the next run neither repeats the alert nor fails
    third = run_dag(DAG_ID)
    assert third["state"] == "success" and third["process_failed"] == []
    assert third["failed_actions"] == {"PROCESS_FAILED": [victim]}  # still reported
    assert all(_loop_actions(sandbox)[(rid, "process")] == 1 for rid in processed)


def test_a_whole_window_of_loop_429s_mid_run_is_waited_out(pipeline_env: Any, run_dag: Any) -> None:
    """Loop answers 429 (no Retry-After) to everything for one one-minute window, scaled to
    0.6 s like the client's waits (RETURNS_SYNC_RETRY_WAIT_SCALE=0.01): the run still succeeds
    and every action is sent exactly once."""
    sandbox = pipeline_env
    mix = {"exact": 0.5, "missing": 0.5}
    truth, received = _sync_and_receive(sandbox, run_dag, 20, mix)
    limit = sandbox.loop_rate_limit()
    limit.window_seconds = 0.6
    # the run reads each Loop return first; the storm begins among its Process/Flag calls
    limit.arm_storm(after_requests=len(received) + 3)
    before = sandbox.stats()["loop"]["faults"].get("rate_limited", 0)
    summary = run_dag(DAG_ID)
    assert summary["state"] == "success"
    assert sandbox.stats()["loop"]["faults"].get("rate_limited", 0) > before
    assert set(summary["actions"]) <= {"confirmed", "sent"}
    actions = _loop_actions(sandbox)
    for rid, fact in truth.returns.items():
        if fact.consumer_return_id not in received or fact.expected_verdict is None:
            continue
        if fact.expected_verdict == "process":
            assert actions[(rid, "process")] == 1, rid
        elif fact.expected_verdict == "flag":
            assert (actions[(rid, "flag")], actions[(rid, "note")]) == (1, 1), rid
