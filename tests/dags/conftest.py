"""Fixtures for running the real DAGs with `dag.test()` against the sandbox over HTTP."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.sandbox import Sandbox
from include.returns_sync.sandbox.connections import airflow_connections

ROOT = Path(__file__).resolve().parents[2]

# Read when the DAG files are parsed: Airflow's task retries wait 1 s in tests, not 30 s.
os.environ.setdefault("RETURNS_SYNC_RETRY_DELAY_SECONDS", "1")


@pytest.fixture(params=["lenient", "strict"])
def sandbox(request: pytest.FixtureRequest) -> Any:
    """The sandbox under each reading of the vendor docs: every DAG-level test runs twice."""
    with Sandbox(seed=0, strict=request.param == "strict") as running:
        yield running


@pytest.fixture
def pipeline_env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Connections pointed at the sandbox, a fresh SQLite state store and report folder.

    The hooks' own throttle is off (`rate_limit` 0): the sandbox enforces no rate limit here,
    and throttling to the vendors' real rates made these tests wait half their time. Tests of
    the throttle itself live in tests/clients and bench/.
    """
    unthrottled = {"rate_limit": 0}
    connections = airflow_connections(sandbox, loop_extra=unthrottled, whiplash_extra=unthrottled)
    for name, value in connections.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_RETURNS_SYNC_DB", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("RETURNS_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("RETURNS_SYNC_RETRY_WAIT_SCALE", "0.01")  # retries wait ms, not seconds
    monkeypatch.setenv("RETURNS_SYNC_HTTP_TIMEOUT", "1.0")
    return sandbox


_PARSING = threading.Lock()


def load_dag(dag_id: str) -> Any:
    """A freshly parsed DAG: `dag.test(run_conf=...)` leaves the conf in the DAG's params.

    Parsing is serialised: DagBag swaps modules in `sys.modules`, which two threads (the tests
    that run two DAGs at once) must not do at the same time.
    """
    from airflow.dag_processing.dagbag import DagBag

    with _PARSING:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


@pytest.fixture
def run_dag(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run a DAG with `dag.test()`; return its state and the summary.json it wrote."""

    def run(dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        dag = load_dag(dag_id)
        dag_run = dag.test(run_conf=conf or {}, logical_date=datetime.now(UTC))
        reports = tmp_path / "reports" / dag_id
        latest = max(reports.glob("*/summary.json"), key=lambda p: p.stat().st_mtime, default=None)
        summary = json.loads(latest.read_text()) if latest else {}
        summary["state"] = str(dag_run.state)
        summary["folder"] = str(latest.parent) if latest else None
        return summary

    return run


def rmas_by_loop_id(sandbox: Any) -> Counter[str]:
    """How many consumer returns Whiplash holds per Loop return id."""
    return Counter(
        str(cr["originator"]["original_id"]) for cr in sandbox.whiplash.consumer_returns()
    )
