"""Run the three DAGs once, in a process of their own, against a running sandbox.

    python -m tests.reliability.run_dags <sandbox admin URL>

Connections, state store and report folder come from the environment (`AIRFLOW_CONN_*`,
`RETURNS_SYNC_*`). Between the DAGs the sandbox plays the outside world through its admin API
(labels move, packages arrive), and some vendor requests fail, so that error and retry paths
log too. Used by the secrets test: a fresh process is the only way to capture every byte the
tasks log, exactly as a worker's log file would hold it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
FAULTS = {"rate": 0.15, "kinds": ["500", "503", "html", "429", "drop"], "seed": 3}


def run(dag_id: str, conf: dict[str, Any] | None = None) -> str:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).get_dag(dag_id)
    dag_run = dag.test(run_conf=conf or {}, logical_date=datetime.now(UTC))
    return str(dag_run.state)


def main(admin_url: str) -> int:
    def admin(path: str, body: dict[str, Any] | None = None) -> None:
        requests.post(f"{admin_url}/{path}", json=body or {}, timeout=30).raise_for_status()

    admin("faults", FAULTS)
    states = [run("loop_returns_to_whiplash"), run("loop_returns_to_whiplash")]
    admin("advance-labels")
    admin("receive", {"mix": {"exact": 0.5, "missing": 0.25, "damaged": 0.25}})
    states += [run("whiplash_receipts_to_loop"), run("whiplash_receipts_to_loop")]
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(days=2)).isoformat(), "end": now.isoformat()}
    states.append(run("loop_asn_backfill", window))
    admin("faults", {"rate": 0.0})
    states += [run("loop_returns_to_whiplash"), run("whiplash_receipts_to_loop")]
    print(f"DAG run states: {states}", flush=True)
    return 0 if states[-2:] == ["success", "success"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
