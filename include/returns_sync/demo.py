"""The main job on the embedded default: sandbox APIs + SQLite, every DAG that exists, in order.

`scripts/demo` runs this. It starts the Loop and Whiplash simulators on 127.0.0.1, seeds a
realistic day of returns, points the Airflow connections at the sandbox through
`AIRFLOW_CONN_*` variables, runs the DAGs with `dag.test()` and prints what happened, checked
against the sandbox's own truth.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _connections(sandbox: Any) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_LOOP_DEFAULT": json.dumps(
            {"conn_type": "http", "host": sandbox.loop_url, "password": sandbox.loop_api_key}
        ),
        "AIRFLOW_CONN_WHIPLASH_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": sandbox.whiplash_url,
                "login": sandbox.whiplash_client_id,
                "password": sandbox.whiplash_client_secret,
            }
        ),
    }


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
    args = parser.parse_args(argv)

    from include.returns_sync.sandbox import Sandbox

    run_home = Path(os.environ["AIRFLOW_HOME"]) / "demo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_CONN_RETURNS_SYNC_DB"] = f"sqlite:///{run_home / 'state.db'}"
    os.environ["RETURNS_SYNC_REPORTS_DIR"] = str(run_home / "reports")

    with Sandbox(seed=args.seed) as sandbox:
        os.environ.update(_connections(sandbox))
        truth = sandbox.seed_day(n=args.returns)
        print(f"Sandbox: Loop {sandbox.loop_url}  Whiplash {sandbox.whiplash_url}")
        print(f"Seeded {args.returns} Loop returns; state and reports under {run_home}\n")

        rma = run_dag("loop_returns_to_whiplash")
        _print("1. loop_returns_to_whiplash (RMA creation)", rma)
        again = run_dag("loop_returns_to_whiplash")
        _print("   re-run of the same window (must create nothing)", again)

        rmas = Counter(str(cr["originator"]["original_id"]) for cr in sandbox.whiplash.consumer_returns())
        eligible = set(truth.rma_ids())
        print("Check against the sandbox's truth:")
        print(f"  eligible and mappable Loop returns : {len(eligible)}")
        print(f"  with exactly one RMA in Whiplash   : {sum(1 for r in eligible if rmas.get(r) == 1)}")
        print(f"  RMAs for ineligible returns        : {sum(1 for r in rmas if r not in eligible)}")
        print(f"  duplicated RMAs                    : {sum(1 for n in rmas.values() if n > 1)}")
    print(f"\nReports: {run_home / 'reports'}")
    return 0


def _print(title: str, summary: dict[str, Any]) -> None:
    if not summary:
        print(f"{title}: DAG not present yet\n")
        return
    print(f"{title}: {summary.get('_state')} in {summary.get('_seconds')}s")
    for key, value in summary.get("counts", {}).items():
        print(f"  {key:<28} {value}")
    for key, value in summary.get("reasons", {}).items():
        print(f"  {key:<28} {value}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
