"""`whiplash_receipts_to_loop` with `dag.test()`: receipts reconciled, Loop processed or flagged."""

from __future__ import annotations

from collections import Counter
from typing import Any

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
