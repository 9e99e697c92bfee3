"""The in-process DAG harness: the real DAGs run with `dag.test()` against a sandbox over HTTP.

One place for what tests/dags (fixtures `pipeline_env`, `run_dag`) and tests/reliability
(fixture `pipeline`) both need:

* `wire_environment` points the connections at a sandbox (the hooks' own throttle off: the
  sandbox enforces no rate limit unless a test turns one on, and throttling to the vendors' real
  rates only made the tests wait), a fresh SQLite state store and report folder, millisecond
  retry waits and short HTTP timeouts;
* `load_dag` parses the DAG folder afresh (`dag.test(run_conf=...)` leaves the conf in the DAG's
  params), serialised between threads;
* `run_dags_at_once` runs DAGs at the same time, each in its own process (as on two workers);
* `Pipeline.run` runs one DAG to its end and returns a `DagResult`: the run state, the
  summary.json it wrote and Airflow's task attempts;
* `failure_alerts` and `counting_retries` collect what the DAGs log while a block runs;
* `wire_merchants` writes a merchants file and gives each merchant's connection ids the
  sandbox's connections (the single-shop sandbox: every merchant reaches the same shop).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.sandbox.connections import airflow_connections

ROOT = Path(__file__).resolve().parents[2]
RMA_DAG = "loop_returns_to_whiplash"
RECEIPTS_DAG = "whiplash_receipts_to_loop"
BACKFILL_DAG = "loop_asn_backfill"


def wire_environment(
    sandbox: Any,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra_env: Mapping[str, str] | None = None,
) -> None:
    """Connections at `sandbox` (client throttling off), state store and reports under `home`."""
    unthrottled = {"rate_limit": 0}
    connections = airflow_connections(sandbox, loop_extra=unthrottled, whiplash_extra=unthrottled)
    for name, value in connections.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_CONN_RETURNS_SYNC_DB", f"sqlite:///{home / 'state.db'}")
    monkeypatch.setenv("RETURNS_SYNC_REPORTS_DIR", str(home / "reports"))
    monkeypatch.setenv("RETURNS_SYNC_RETRY_WAIT_SCALE", "0.01")  # retries wait ms, not seconds
    monkeypatch.setenv("RETURNS_SYNC_HTTP_TIMEOUT", "1.0")
    for name, value in (extra_env or {}).items():
        monkeypatch.setenv(name, value)


def wire_merchants(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    entries: list[dict[str, Any]],
    *,
    keep_default_connections: bool = True,
) -> Path:
    """Write `entries` as the merchants file (`RETURNS_SYNC_MERCHANTS`) and define every
    connection id they use as a copy of the sandbox's `loop_default` / `whiplash_default`
    (call after `wire_environment`). Without `keep_default_connections` the default ids are
    removed, so a run that used them instead of its merchant's would fail."""
    import os

    import yaml

    from include.returns_sync.merchants import parse_merchants

    path = home / "merchants.yaml"
    path.write_text(yaml.safe_dump({"merchants": entries}, sort_keys=False))
    loaded = parse_merchants(path.read_text(), path)
    assert not loaded.problems, loaded.describe_problems()
    loop = os.environ["AIRFLOW_CONN_LOOP_DEFAULT"]
    whiplash = os.environ["AIRFLOW_CONN_WHIPLASH_DEFAULT"]
    for merchant in loaded.merchants:
        monkeypatch.setenv(f"AIRFLOW_CONN_{merchant.loop_conn_id.upper()}", loop)
        monkeypatch.setenv(f"AIRFLOW_CONN_{merchant.whiplash_conn_id.upper()}", whiplash)
    if not keep_default_connections:
        used = {m.loop_conn_id for m in loaded.merchants} | {
            m.whiplash_conn_id for m in loaded.merchants
        }
        for conn_id in {"loop_default", "whiplash_default"} - used:
            monkeypatch.delenv(f"AIRFLOW_CONN_{conn_id.upper()}", raising=False)
    monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    return path


_PARSING = threading.Lock()


def load_dag(dag_id: str) -> Any:
    """A freshly parsed DAG.

    Parsing is serialised: DagBag swaps modules in `sys.modules`, which two threads (the tests
    that run two DAGs at once) must not do at the same time.
    """
    from airflow.dag_processing.dagbag import DagBag

    with _PARSING:
        bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.get_dag(dag_id)


def run_dag_test(dag_id: str, conf: Mapping[str, Any] | None = None) -> Any:
    """Run `dag_id` to its end with `dag.test()` (a fresh parse); returns the DagRun."""
    dag = load_dag(dag_id)
    return dag.test(run_conf=dict(conf or {}), logical_date=datetime.now(UTC))


_RUN_ONE = """
import json, sys
from tests.support.dag_harness import run_dag_test
print("state=" + str(run_dag_test(sys.argv[1], json.loads(sys.argv[2])).state))
"""


def run_dags_at_once(runs: Sequence[tuple[str, Mapping[str, Any]]], scratch: Path) -> list[str]:
    """Run DAGs at the same time with `dag.test()`, each in its own Python process, as two
    workers would; the final state of each run.

    Not threads: `dag.test()` re-parses the DAG folder and serialises the DAG in-process, and two
    of those in one interpreter race on module state (a `dictionary changed size` now and
    then). The processes share what the pipeline shares, through the environment: the sandbox,
    the state store, the reports folder; each gets its own copy of this process's SQLite
    metadata database (a PostgreSQL one is shared: its server takes concurrent writers).
    """
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    database = Path(conn.removeprefix("sqlite:///")) if conn.startswith("sqlite:///") else None
    if not conn:
        database = home / "airflow.db"
    scratch.mkdir(parents=True, exist_ok=True)
    processes = []
    for number, (dag_id, conf) in enumerate(runs):
        env = dict(os.environ)
        if database is not None:
            own = scratch / f"airflow-{number}.db"
            shutil.copy2(database, own)
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{own}"
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", _RUN_ONE, dag_id, json.dumps(dict(conf))],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    states = []
    for (dag_id, _), process in zip(runs, processes, strict=True):
        out, err = process.communicate(timeout=300)
        lines = [line for line in out.splitlines() if line.startswith("state=")]
        assert process.returncode == 0 and lines, f"{dag_id} failed:\n{(out + err)[-3000:]}"
        states.append(lines[-1].removeprefix("state="))
    return states


@dataclass
class DagResult:
    """One `dag.test()` run: its state, the report it wrote, and Airflow's task attempts."""

    dag_id: str
    state: str
    summary: dict[str, Any]
    folder: Path | None
    task_tries: dict[str, int] = field(default_factory=dict)

    @property
    def task_retries(self) -> int:
        """Attempts beyond the first, over all task instances of the run."""
        return sum(max(0, tries - 1) for tries in self.task_tries.values())


class Pipeline:
    """The DAGs wired to one sandbox through the environment (see `wire_environment`)."""

    def __init__(
        self,
        sandbox: Any,
        home: Path,
        monkeypatch: pytest.MonkeyPatch,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.home = home
        self.reports = home / "reports"
        self.state_db = home / "state.db"
        wire_environment(sandbox, home, monkeypatch, extra_env)
        self.runs: list[DagResult] = []

    def run(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> DagResult:
        """Run one DAG to its end with `dag.test()` (a fresh parse: conf must not leak)."""
        dag_run = run_dag_test(dag_id, conf)
        folder = self._report_folder(dag_id, dag_run.run_id)
        summary = json.loads((folder / "summary.json").read_text()) if folder else {}
        tries = {
            f"{ti.task_id}[{ti.map_index}]": int(ti.try_number or 0)
            for ti in dag_run.get_task_instances()
        }
        result = DagResult(dag_id, str(dag_run.state), summary, folder, tries)
        self.runs.append(result)
        return result

    def _report_folder(self, dag_id: str, run_id: str) -> Path | None:
        from include.returns_sync.reports import run_dir

        folder = run_dir(dag_id, run_id, self.reports)
        return folder if (folder / "summary.json").exists() else None

    def store(self) -> Any:
        from include.returns_sync import runtime

        return runtime.state_store()


def latest_summary(reports: Path, dag_id: str) -> tuple[dict[str, Any], Path | None]:
    """The newest summary.json under the reports of `dag_id` and its folder ({} and None: none)."""
    latest = max(
        (reports / dag_id).glob("*/summary.json"), key=lambda p: p.stat().st_mtime, default=None
    )
    if latest is None:
        return {}, None
    return json.loads(latest.read_text()), latest.parent


def rmas_by_loop_id(sandbox: Any) -> Counter[str]:
    """How many consumer returns Whiplash holds per Loop return id."""
    return Counter(
        str(cr["originator"]["original_id"])
        for cr in sandbox.whiplash.consumer_returns()
        if cr.get("originator")
    )


# --------------------------------------------------------------------------- logs


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level=level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def failure_alerts() -> Iterator[list[str]]:
    """The failure alerts logged while the block runs (one per task that failed for good)."""
    handler = _Collect(logging.ERROR)
    logger = logging.getLogger("returns_sync.alerts")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


class RetryCounter(logging.Handler):
    """Counts the vendor-call retries the clients' retry policy logs ("retrying in ...")."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.retries += 1


@contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    """Counts the retries the vendor clients log while the block runs."""
    counter = RetryCounter()
    logger = logging.getLogger("include.returns_sync.clients.policy")
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
