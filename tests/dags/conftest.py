"""Fixtures for running the real DAGs with `dag.test()` against the sandbox over HTTP.

The harness itself (environment wiring, parsing, running) is `tests.support.dag_harness`,
shared with tests/reliability.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.sandbox import Sandbox
from tests.support.dag_harness import latest_summary, run_dag_test, wire_environment

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
    wire_environment(sandbox, tmp_path, monkeypatch)
    return sandbox


@pytest.fixture
def run_dag(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run a DAG with `dag.test()`; return its state and the summary.json it wrote."""

    def run(dag_id: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        dag_run = run_dag_test(dag_id, conf)
        summary, folder = latest_summary(tmp_path / "reports", dag_id)
        summary["state"] = str(dag_run.state)
        summary["folder"] = str(folder) if folder else None
        return summary

    return run
