"""End to end on the production topology: CeleryExecutor, PostgreSQL, Redis, two workers.

The three DAGs are triggered through Airflow's public REST API against the sandbox vendors,
and the outcome is checked against the sandbox's own truth. The RMA poll and the backfill run
at the same time over the same returns, their mapped creation tasks spread over both workers,
so a missing claim or lock would show up as a duplicate RMA.

The sandbox is strict and its Whiplash access tokens live 10 s, with the refresh grant: the
task processes of both workers need new tokens many times, often at once, from a vendor that
revokes a refresh token once its successor is used. One `invalid_grant` would fail a task.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.airflow_stack import RunningStack, sandbox_admin
from tests.support.vendor_truth import rmas_per_loop_return, state_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

RUN_TIMEOUT = 180


def loop_actions(admin: str) -> Counter[tuple[str, str]]:
    """Successful Loop actions (process / flag / note) per (return id, action)."""
    actions = sandbox_admin(admin, "GET", "/loop/actions")["actions"]
    return Counter((a["return_id"], a["action"]) for a in actions if a["ok"])


def run_and_wait(running: RunningStack, triggers: list[tuple[str, dict[str, Any]]]) -> None:
    """Trigger DAG runs together and assert that every one of them succeeds."""
    api = running.api
    runs = [(dag_id, api.trigger(dag_id, conf)) for dag_id, conf in triggers]
    states = api.wait_for_runs(runs, running.processes, timeout=RUN_TIMEOUT)
    for run, state in states.items():
        assert state == "success", f"{run} ended {state}: {api.failure_details(*run)}"


def test_celery_workers_create_each_rma_once_and_act_on_each_receipt_once(
    celery_stack: RunningStack,
) -> None:
    running = celery_stack
    api, admin = running.api, running.sandbox["admin_url"]
    started = time.monotonic()
    for dag_id in ("loop_returns_to_whiplash", "loop_asn_backfill", "whiplash_receipts_to_loop"):
        api.unpause(dag_id)

    # 1. The poll and the backfill race over the same day of returns on two workers.
    today = datetime.now(UTC).date()
    window = {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}
    run_and_wait(running, [("loop_returns_to_whiplash", {}), ("loop_asn_backfill", window)])

    truth = sandbox_admin(admin, "GET", "/truth")
    needed = set(truth["needs_rma"])
    assert len(needed) >= 20, "the seeded day should hold a realistic number of eligible returns"
    rmas = rmas_per_loop_return(running.sandbox)
    assert {rid for rid in needed if rmas[rid] != 1} == set(), "every eligible return: one RMA"
    assert set(rmas) - needed == set(), "no RMA for an ineligible or unmappable return"
    recorded = state_rows(
        running.state_url,
        "SELECT loop_return_id FROM sync_records WHERE status IN ('created', 'adopted')",
    )
    assert {str(rid) for (rid,) in recorded} == needed, "the state store knows every RMA"
    per_worker = running.stack.workloads_per_worker()
    assert all(count > 0 for count in per_worker.values()), f"both workers ran tasks: {per_worker}"

    # 2. The warehouse receives every package; receipts are reconciled and acted on in Loop.
    received = sandbox_admin(admin, "POST", "/receive")["received"]
    assert len(received) == len(needed)
    run_and_wait(running, [("whiplash_receipts_to_loop", {})])
    first_actions = loop_actions(admin)
    # 3. Running everything again sends nothing new: no RMA and no Loop action twice.
    run_and_wait(running, [("whiplash_receipts_to_loop", {}), ("loop_asn_backfill", window)])

    truth = sandbox_admin(admin, "GET", "/truth")
    actions = loop_actions(admin)
    assert actions == first_actions, "the second receipts run acted again"
    assert [key for key, n in actions.items() if n > 1] == [], "a Loop action was sent twice"
    verdicts: dict[str, str] = truth["verdicts"]
    assert len(verdicts) == len(received)
    wrong = {}
    for rid, verdict in verdicts.items():
        did = {action for (r, action) in actions if r == rid}
        want = {"process": {"process"}, "flag": {"flag", "note"}, "skip": set()}[verdict]
        if did != want:
            wrong[rid] = (verdict, sorted(did))
    assert wrong == {}, f"Loop actions differ from the expected verdicts: {wrong}"
    assert {"process", "flag"} <= set(verdicts.values()), "the day should hold both verdicts"
    assert rmas_per_loop_return(running.sandbox) == rmas, "the second backfill created an RMA"
    oauth = sandbox_admin(admin, "GET", "/stats")["whiplash"]["oauth"]
    assert oauth["invalid_grant"] == 0, f"a refresh token was used twice: {oauth}"
    refreshes = oauth["grants"].get("refresh_token", 0)
    assert refreshes >= 2, f"the access token should have been refreshed repeatedly: {oauth}"
    print(
        f"\nstack up in {running.started_in:.0f}s, DAG runs in {time.monotonic() - started:.0f}s;"
        f" {len(needed)} RMAs, {len(verdicts)} verdicts, workloads per worker {per_worker},"
        f" {refreshes} token refreshes"
    )
