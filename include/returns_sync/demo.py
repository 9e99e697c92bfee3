"""The main job on the embedded default: sandbox APIs + SQLite, every DAG that exists, in order.

`scripts/demo` runs this. It starts the Loop and Whiplash simulators on 127.0.0.1, seeds a
realistic day of returns, points the Airflow connections at the sandbox through
`AIRFLOW_CONN_*` variables, runs the DAGs with `dag.test()` and prints what happened, checked
against the sandbox's own truth.

`--merchants N` runs the same day for N merchants (m01..mNN) served from one deployment: the
sandbox serves a Loop shop per merchant and one Whiplash account with a customer per merchant;
the demo writes the merchants file itself (`RETURNS_SYNC_MERCHANTS`, each merchant on its own
`loop_<id>` connection and its Whiplash customer, all on `whiplash_default`), runs each
merchant's DAGs (`Merchant.dag_id`, e.g. `loop_returns_to_whiplash__m01`) and checks each
merchant against its own truth, plus that nothing crossed merchants (no RMA under another
merchant's customer, no Loop action in another merchant's shop).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RMA = "loop_returns_to_whiplash"
RECEIPTS = "whiplash_receipts_to_loop"
BACKFILL = "loop_asn_backfill"


def _load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.get_dag(dag_id)


def run_dag(dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one DAG in-process with `dag.test()`; return its report summary."""
    from include.returns_sync.reports import reports_root

    dag = _load_dag(dag_id)
    if dag is None:
        return {}
    started = time.perf_counter()
    dag_run = dag.test(run_conf=conf or {}, logical_date=datetime.now(UTC))
    elapsed = time.perf_counter() - started
    folder = reports_root() / dag_id
    latest = max(folder.glob("*/summary.json"), key=lambda p: p.stat().st_mtime, default=None)
    summary = json.loads(latest.read_text()) if latest else {}
    summary["_state"] = str(getattr(dag_run, "state", "?"))
    summary["_seconds"] = round(elapsed, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--returns", type=int, default=200, help="Loop returns to seed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="run against the sandbox's harsher reading of the vendor docs (sandbox/strict.py)",
    )
    parser.add_argument(
        "--merchants",
        type=int,
        default=None,
        metavar="N",
        help="run the day for N merchants sharing one Whiplash account (--returns per merchant)",
    )
    args = parser.parse_args(argv)
    if args.merchants is not None and args.merchants < 1:
        parser.error("--merchants needs N >= 1")

    from include.returns_sync.sandbox import Sandbox
    from include.returns_sync.sandbox.connections import airflow_connections

    run_home = (
        Path(os.environ["AIRFLOW_HOME"]) / "demo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    )
    run_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_CONN_RETURNS_SYNC_DB"] = f"sqlite:///{run_home / 'state.db'}"
    os.environ["RETURNS_SYNC_REPORTS_DIR"] = str(run_home / "reports")
    if args.merchants is not None:
        return _merchants_day(args, run_home)

    with Sandbox(seed=args.seed, strict=args.strict or None) as sandbox:
        os.environ.update(airflow_connections(sandbox))
        truth = sandbox.seed_day(n=args.returns)
        mode = "strict" if sandbox.strict else "lenient"
        print(f"Sandbox ({mode}): Loop {sandbox.loop_url}  Whiplash {sandbox.whiplash_url}")
        print(f"Seeded {args.returns} Loop returns; state and reports under {run_home}\n")

        _print("1. loop_returns_to_whiplash (RMA creation, first poll)", run_dag(RMA))
        missed = sandbox.seed_missed(n=3)  # label moved 3 h ago, behind the poll's watermark
        _print("2. loop_returns_to_whiplash (next poll: nothing new in its window)", run_dag(RMA))
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        today = datetime.now(UTC).date().isoformat()
        backfill = run_dag(BACKFILL, {"start": yesterday, "end": today})
        _print("3. loop_asn_backfill (yesterday and today, from the form)", backfill)
        caught = set(backfill.get("loop_return_ids", {}).get("created", []))
        print(
            f"   returns the polls missed: {len(missed)}, caught by the backfill: "
            f"{len(caught & set(missed))}\n"
        )

        sandbox.advance_labels()
        received = sandbox.receive_packages()
        print(
            f"The warehouse received {len(received)} packages: {dict(Counter(received.values()))}\n"
        )
        receipts = run_dag(RECEIPTS)
        _print("4. whiplash_receipts_to_loop (reconcile, Process / Flag)", receipts)
        _print("   re-run (must send nothing new)", run_dag(RECEIPTS))
        _check(sandbox, truth)
    print(f"\nReports: {run_home / 'reports'}")
    return 0


def _merchants_day(args: argparse.Namespace, run_home: Path) -> int:
    """The demo day for `args.merchants` merchants sharing one Whiplash account."""
    import yaml

    from include.returns_sync.sandbox import Sandbox
    from include.returns_sync.sandbox.connections import merchant_connections, merchants_file

    with Sandbox(seed=args.seed, strict=args.strict or None, merchants=args.merchants) as sandbox:
        merchants_path = run_home / "merchants.yaml"
        merchants_path.write_text(yaml.safe_dump(merchants_file(sandbox), sort_keys=False))
        os.environ["RETURNS_SYNC_MERCHANTS"] = str(merchants_path)
        os.environ.update(merchant_connections(sandbox))
        dag_ids = {m: _merchant_dag_ids(m) for m in sandbox.merchants}
        sandbox.seed_day(n=args.returns)
        mode = "strict" if sandbox.strict else "lenient"
        print(f"Sandbox ({mode}): Loop {sandbox.loop_url}  Whiplash {sandbox.whiplash_url}")
        print(
            f"{len(dag_ids)} merchants ({', '.join(dag_ids)}) in one Whiplash account, "
            f"{args.returns} Loop returns each; merchants file {merchants_path}\n"
        )

        def each(step: str, base: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
            print(step)
            results = {}
            for merchant, ids in dag_ids.items():
                results[merchant] = run_dag(ids[base], conf)
                _print_line(ids[base], results[merchant])
            print()
            return results

        each("1. RMA creation, first poll", RMA)
        missed = {m: sandbox.seed_missed(n=1, merchant=m) for m in dag_ids}
        each("2. RMA creation, next poll (nothing new in its window)", RMA)
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        today = datetime.now(UTC).date().isoformat()
        backfills = each(
            "3. ASN backfill (yesterday and today)", BACKFILL, {"start": yesterday, "end": today}
        )
        for merchant, summary in backfills.items():
            caught = set(summary.get("loop_return_ids", {}).get("created", []))
            print(
                f"   {merchant}: missed by the polls {len(missed[merchant])}, caught {len(caught & set(missed[merchant]))}"
            )
        sandbox.advance_labels()
        received = sandbox.receive_packages()
        print(
            f"\nThe warehouse received {len(received)} packages: {dict(Counter(received.values()))}\n"
        )
        each("4. Receipts (reconcile, Process / Flag)", RECEIPTS)
        each("   re-run (must send nothing new)", RECEIPTS)
        for merchant in dag_ids:
            keys = sandbox.merchant_keys(merchant)
            print(f"[{merchant}] ", end="")
            _check_shop(
                sandbox.shop(merchant),
                sandbox.whiplash.consumer_returns(keys["whiplash_customer_id"]),
                sandbox.truth.for_merchant(merchant),
            )
        misfiled = sandbox.truth.misfiled(sandbox.whiplash.consumer_returns())
        statuses = sandbox.stats()["loop"]["statuses"]
        print("\nAcross merchants:")
        print(f"  RMAs under another merchant's customer : {len(misfiled)}")
        print(f"  Loop 401/404 answers (wrong key or shop): {_count(statuses, 401, 404)}")
    print(f"\nReports: {run_home / 'reports'}")
    return 0


def _merchant_dag_ids(merchant_id: str) -> dict[str, str]:
    """Each base DAG id -> this merchant's DAG id, as the merchants module names them."""
    from include.returns_sync.merchants import get_merchant

    merchant = get_merchant(merchant_id)
    return {base: merchant.dag_id(base) for base in (RMA, RECEIPTS, BACKFILL)}


def _count(statuses: dict[Any, int], *wanted: int) -> int:
    """Answers with any of these HTTP statuses (a shop only answers for its own returns, so
    a merchant's key asking about another merchant's return gets a 404, never the return)."""
    return sum(n for status, n in statuses.items() if int(status) in wanted)


def _print_line(dag_id: str, summary: dict[str, Any]) -> None:
    """One merchant's run on one line: state, time, counts."""
    if not summary:
        print(f"  {dag_id}: DAG not present yet")
        return
    counts = {
        name: value
        for key in ("counts", "verdicts", "actions")
        for name, value in (summary.get(key) or {}).items()
        if value
    }
    print(f"  {dag_id}: {summary.get('_state')} in {summary.get('_seconds')}s {counts}")


def _check(sandbox: Any, truth: Any) -> None:
    """Compare the outcome with the sandbox's truth: nothing lost, nothing doubled."""
    _check_shop(sandbox.loop, sandbox.whiplash.consumer_returns(), truth)


def _check_shop(shop: Any, consumer_returns: list[dict[str, Any]], truth: Any) -> None:
    """One merchant: its shop, the consumer returns of its Whiplash customer, its truth."""
    rmas = Counter(str(cr["originator"]["original_id"]) for cr in consumer_returns)
    needed = set(truth.rma_ids())
    actions: Counter[tuple[str, str]] = Counter()
    for rid in truth.returns:
        for entry in shop.actions_for(rid):
            actions[(rid, entry["action"])] += 1
    expected = truth.verdicts()
    right = 0
    # Process is asynchronous at Loop: a Process sent once counts as acted on, whether Loop has
    # closed the return yet or it is still queued (`still_queued` says how many are).
    still_queued = 0
    for rid, verdict in expected.items():
        did = {a for (r, a) in actions if r == rid}
        if verdict == "process" and did == {"process"} and shop.get(rid)["state"] == "open":
            still_queued += 1
        if (
            (verdict == "process" and did == {"process"})
            or (verdict == "flag" and did == {"flag", "note"})
            or (verdict == "skip" and not did)
        ):
            right += 1
    print("Check against the sandbox's truth:")
    print(f"  Loop returns needing an RMA        : {len(needed)}")
    print(f"  with exactly one RMA in Whiplash   : {sum(1 for r in needed if rmas.get(r) == 1)}")
    print(f"  RMAs that should not exist         : {sum(1 for r in rmas if r not in needed)}")
    print(f"  duplicated RMAs                    : {sum(1 for n in rmas.values() if n > 1)}")
    print(f"  receipts with a known right verdict: {len(expected)}")
    print(f"  acted on correctly in Loop         : {right}")
    print(f"  of them Processes Loop still queues: {still_queued}")
    print(f"  Processes that failed in Loop      : {len(shop.processing_failed)}")
    print(f"  Loop actions sent twice            : {sum(1 for n in actions.values() if n > 1)}")


def _print(title: str, summary: dict[str, Any]) -> None:
    if not summary:
        print(f"{title}: DAG not present yet\n")
        return
    print(f"{title}: {summary.get('_state')} in {summary.get('_seconds')}s")
    for key in ("counts", "reasons", "verdicts", "actions"):
        for name, value in (summary.get(key) or {}).items():
            print(f"  {name:<28} {value}")
    codes = {k: v for k, v in (summary.get("reason_codes") or {}).items() if v}
    for name, value in codes.items():
        print(f"  flag/skip reason {name:<17} {value}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
