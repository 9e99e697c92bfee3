"""Every DAG file parses cleanly, quickly, without secrets and without touching the network."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
EXPECTED_DAGS = {"loop_returns_to_whiplash", "whiplash_receipts_to_loop", "loop_asn_backfill"}


@pytest.fixture(scope="module")
def dagbag(monkeypatch_module: pytest.MonkeyPatch):
    from airflow.dag_processing.dagbag import DagBag

    for var in ("AIRFLOW_CONN_LOOP_DEFAULT", "AIRFLOW_CONN_WHIPLASH_DEFAULT"):
        monkeypatch_module.delenv(var, raising=False)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a DAG file opened a network connection while parsing")

    monkeypatch_module.setattr(socket.socket, "connect", no_network)
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= EXPECTED_DAGS


def test_every_dag_is_documented_tagged_and_owned(dagbag) -> None:
    for dag_id in EXPECTED_DAGS:
        dag = dagbag.get_dag(dag_id)
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        assert "returns-sync" in dag.tags, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert dag.catchup is False or dag_id == "loop_asn_backfill", dag_id
        for task in dag.tasks:
            assert task.owner == "returns-sync", (dag_id, task.task_id)
            # Every task retries, except input validation: a wrong form must fail at once.
            assert task.retries >= 1 or task.task_id == "plan", (dag_id, task.task_id)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_nothing_heavy_at_top_level(dag_file: Path) -> None:
    """Parsing runs in the dag-processor every 30 s: no pandas, requests or sqlalchemy at top
    level (what parsing costs is measured by bench/bench_merchants.py --parts parse)."""
    probe = (
        "import json, sys, importlib.util\n"
        "before = set(sys.modules)\n"
        f"spec = importlib.util.spec_from_file_location('probe', {str(dag_file)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "heavy = sorted(m for m in ('pandas', 'requests', 'sqlalchemy', 'include.returns_sync.clients')"
        " if m in sys.modules and m not in before)\n"
        "print(json.dumps(heavy))\n"
    )
    warm = "import airflow.sdk\n"  # Airflow itself is already imported by the dag-processor
    out = (
        subprocess.run(
            [sys.executable, "-c", warm + probe],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    heavy = json.loads(out)
    assert heavy == [], f"{dag_file.name} imports {heavy} at top level"
