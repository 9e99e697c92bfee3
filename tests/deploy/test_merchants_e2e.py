"""Many merchants end to end on the production topology (issue 13, "Proof").

One Celery deployment (PostgreSQL, Redis, two workers) serves three merchants from a
RETURNS_SYNC_MERCHANTS file, all in the sandbox's one Whiplash account, each its own customer
there (`whiplash_customer_id`, sent as `X-Customer-ID`): `m01` and `m02` are healthy, `m03`'s
Loop credentials are revoked (its `loop_m03` connection carries a wrong API key: Loop answers
401). The sandbox repeats SKUs and order names across its Whiplash customers, so a lookup
without the customer scope would find another merchant's order or item.

Each merchant's DAGs (`<dag>__<id>`) are triggered through the REST API, all merchants at once,
the RMA poll racing the backfill on both workers. Checked against the sandbox's truth per
merchant and against the state store's rows by merchant:

- the healthy merchants get one RMA per eligible return, filed under their own Whiplash
  customer, one decision per received return and each Loop action exactly once, in their own
  shop (a second round sends nothing);
- `m03`'s runs that need Loop (its RMA poll and backfill) fail, and only its runs: every other
  run succeeds, and the failure alert (`RETURNS_SYNC_ALERT merchant=m03 ...`) names it and no
  one else. Its receipts run may succeed: with no RMA of its own, no package of it is received
  and there is nothing to act on in Loop (nothing is done in its shop, which is checked);
- nothing crosses merchants: no RMA, state row or Loop action of one merchant carries another
  merchant's return, and `m03` has none at all.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.airflow_stack import RunningStack, sandbox_admin
from tests.support.vendor_truth import loop_return_id, state_rows, whiplash_consumer_returns

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

RMA, BACKFILL, RECEIPTS = (
    "loop_returns_to_whiplash",
    "loop_asn_backfill",
    "whiplash_receipts_to_loop",
)
HEALTHY = ("m01", "m02")
BROKEN = "m03"
RUN_TIMEOUT = 180


def merchant_rows(state_url: str) -> dict[str, list[tuple[str, ...]]]:
    """What the shared PostgreSQL state store holds, as (merchant, ...) tuples per table."""
    queries = {
        "rmas": "SELECT merchant, loop_return_id FROM sync_records "
        "WHERE status IN ('created', 'adopted')",
        "records": "SELECT merchant, loop_return_id FROM sync_records",
        "decisions": "SELECT merchant, loop_return_id, verdict FROM decisions",
        "actions": "SELECT merchant, loop_return_id, action FROM loop_actions WHERE status = 'sent'",
    }
    return {
        name: [tuple(str(v) for v in row) for row in state_rows(state_url, sql)]
        for name, sql in queries.items()
    }


def record_statuses(
    state_url: str, merchant: str, loop_return_ids: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """(status, reason) of some returns' state records, for an assertion message."""
    wanted = sorted(loop_return_ids)[:10]
    if not wanted:
        return {}
    rows = state_rows(
        state_url,
        "SELECT merchant, loop_return_id, status, reason_code, reason_detail "
        "FROM sync_records WHERE loop_return_id = ANY(:ids)",
        {"ids": wanted},
    )
    found = {str(r[1]): (str(r[0]), str(r[2]), str(r[3]), str(r[4])[:120]) for r in rows}
    return {rid: found.get(rid, ("no record",)) for rid in wanted}


def by_merchant(rows: list[tuple[str, ...]]) -> dict[str, set[tuple[str, ...]]]:
    grouped: dict[str, set[tuple[str, ...]]] = {}
    for merchant, *rest in rows:
        grouped.setdefault(merchant, set()).add(tuple(rest))
    return grouped


def shop_actions(admin: str, merchant: str) -> Counter[tuple[str, str]]:
    """Successful Loop actions in one merchant's shop, per (return id, action)."""
    actions = sandbox_admin(admin, "GET", f"/loop/actions?merchant={merchant}")["actions"]
    return Counter((str(a["return_id"]), a["action"]) for a in actions if a["ok"])


def run_all(
    running: RunningStack, triggers: list[tuple[str, dict[str, Any]]]
) -> dict[tuple[str, str], str]:
    """Trigger DAG runs together; their final states by (dag_id, run_id)."""
    api = running.api
    runs = [(dag_id, api.trigger(dag_id, conf)) for dag_id, conf in triggers]
    return api.wait_for_runs(runs, running.processes, timeout=RUN_TIMEOUT)


def assert_succeeded(running: RunningStack, states: dict[tuple[str, str], str]) -> None:
    for run, state in states.items():
        assert state == "success", f"{run} ended {state}: {running.api.failure_details(*run)}"


def alerts(running: RunningStack) -> Counter[str]:
    """Failure alerts in the task logs, per merchant they name."""
    named: Counter[str] = Counter()
    for log in (running.home / "logs").rglob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if "RETURNS_SYNC_ALERT" in line and "merchant=" in line:
                named[line.split("merchant=", 1)[1].split()[0].strip("\"',")] += 1
    return named


def test_one_deployment_serves_each_merchant_alone_and_a_revoked_one_fails_alone(
    merchants_stack: RunningStack,
) -> None:
    running = merchants_stack
    api, admin = running.api, running.sandbox["admin_url"]
    started = time.monotonic()
    assert running.merchants == (*HEALTHY, BROKEN)
    keys = running.sandbox["merchants"]
    customer = {m: int(keys[m]["whiplash_customer_id"]) for m in running.merchants}
    assert len(set(customer.values())) == 3, "each merchant is its own Whiplash customer"
    for merchant in running.merchants:
        for base in (RMA, BACKFILL, RECEIPTS):
            api.unpause(running.dag_id(base, merchant))

    # 1. Every merchant's poll and backfill at once, racing over the same day on two workers.
    today = datetime.now(UTC).date()
    window = {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}
    states = run_all(
        running,
        [
            (running.dag_id(base, m), conf)
            for m in running.merchants
            for base, conf in ((RMA, {}), (BACKFILL, window))
        ],
    )
    broken = {run: s for run, s in states.items() if run[0].endswith(f"__{BROKEN}")}
    assert_succeeded(running, {run: s for run, s in states.items() if run not in broken})
    assert set(broken.values()) == {"failed"}, f"{BROKEN}'s Loop runs must fail: {broken}"

    truth = {m: sandbox_admin(admin, "GET", f"/truth?merchant={m}") for m in running.merchants}
    needed = {m: set(truth[m]["needs_rma"]) for m in running.merchants}
    for merchant in HEALTHY:
        assert len(needed[merchant]) >= 10, f"{merchant}'s seeded day holds too few RMAs"
    owner = {rid: m for m in running.merchants for rid in truth[m]["returns"]}
    assert len(owner) == sum(len(truth[m]["returns"]) for m in running.merchants)

    rmas = whiplash_consumer_returns(running.sandbox)
    per_return = Counter(loop_return_id(rma) for rma in rmas)
    rows = merchant_rows(running.state_url)
    for merchant in HEALTHY:
        wrong = {rid: per_return[rid] for rid in needed[merchant] if per_return[rid] != 1}
        statuses = record_statuses(running.state_url, merchant, wrong)
        assert wrong == {}, (
            f"{merchant}: every eligible return gets exactly one RMA; RMAs per return id "
            f"{wrong}, their state records {statuses}"
        )
    assert set(per_return) == needed["m01"] | needed["m02"], "no RMA for anything else"
    misfiled = [
        (loop_return_id(r), r.get("customer_id"))
        for r in rmas
        if r.get("customer_id") != customer[owner[loop_return_id(r)]]
    ]
    assert misfiled == [], "every RMA is filed under its own merchant's Whiplash customer"

    recorded = by_merchant(rows["rmas"])
    assert set(recorded) == set(HEALTHY), f"state rows by merchant: {sorted(recorded)}"
    for merchant in HEALTHY:
        assert {rid for (rid,) in recorded[merchant]} == needed[merchant]
    crossed = [(m, rid) for m, rid in rows["records"] if owner.get(rid, m) != m]
    assert crossed == [], "a merchant recorded another merchant's return"
    assert not any(m == BROKEN for m, _ in rows["records"]), f"{BROKEN} read no Loop return"

    # 2. The warehouse receives every package; each merchant's receipts are reconciled.
    received = sandbox_admin(admin, "POST", "/receive")["received"]
    assert len(received) == len(per_return)
    receipts: list[tuple[str, dict[str, Any]]] = [
        (running.dag_id(RECEIPTS, m), {}) for m in running.merchants
    ]
    states = run_all(running, receipts)
    healthy_runs = {run: s for run, s in states.items() if not run[0].endswith(f"__{BROKEN}")}
    assert_succeeded(running, healthy_runs)
    first = {m: shop_actions(admin, m) for m in running.merchants}

    # 3. Everything again: nothing new anywhere (no RMA, no decision, no Loop action twice).
    again = [
        (running.dag_id(b, m), c) for m in HEALTHY for b, c in ((RECEIPTS, {}), (BACKFILL, window))
    ]
    assert_succeeded(running, run_all(running, again))

    rows = merchant_rows(running.state_url)
    decisions, actions = by_merchant(rows["decisions"]), by_merchant(rows["actions"])
    for merchant in HEALTHY:
        verdicts: dict[str, str] = sandbox_admin(admin, "GET", f"/truth?merchant={merchant}")[
            "verdicts"
        ]
        assert verdicts, f"{merchant} had packages received"
        did = shop_actions(admin, merchant)
        assert did == first[merchant], f"{merchant}: the second receipts run acted again"
        assert [k for k, n in did.items() if n > 1] == [], f"{merchant}: a Loop action twice"
        differ = {}
        for rid, verdict in verdicts.items():
            sent = {action for (r, action) in did if r == rid}
            want = {"process": {"process"}, "flag": {"flag", "note"}, "skip": set()}[verdict]
            if sent != want:
                differ[rid] = (verdict, sorted(sent))
        assert differ == {}, f"{merchant}: Loop actions differ from the expected verdicts"
        assert {rid for rid, _ in did} <= set(verdicts), f"{merchant} acted on a foreign return"
        assert {rid for rid, _ in decisions.get(merchant, set())} == set(verdicts)
        assert {(rid, a) for rid, a in actions.get(merchant, set())} == set(did)
    assert shop_actions(admin, BROKEN) == Counter(), f"nothing was done in {BROKEN}'s shop"
    assert set(decisions) <= set(HEALTHY) and set(actions) <= set(HEALTHY)
    assert (
        Counter(loop_return_id(r) for r in whiplash_consumer_returns(running.sandbox)) == per_return
    )

    named = alerts(running)
    assert named[BROKEN] >= len(broken), f"each failed run of {BROKEN} alerts, naming it"
    assert set(named) == {BROKEN}, f"only {BROKEN} is alerted on: {dict(named)}"
    print(
        f"\nstack up in {running.started_in:.0f}s, DAG runs in {time.monotonic() - started:.0f}s;"
        f" RMAs { ({m: len(needed[m]) for m in HEALTHY}) }, {len(received)} received,"
        f" alerts {dict(named)}, workloads per worker {running.stack.workloads_per_worker()}"
    )
