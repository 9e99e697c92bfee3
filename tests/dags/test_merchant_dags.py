"""One deployment, several merchants: the DAG files build each merchant's three DAGs.

Parsed with Airflow's DagBag from a merchants file: ids, tags, staggered schedules, the default
merchant's unchanged ids, a bad entry shown as an import error while the others load, 600 DAGs
at 200 merchants, and the form fields' JSON Schema dialect (what the parse cost hangs on).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.dag_defaults import backfill_cron, stagger_minutes, staggered_cron
from include.returns_sync.merchants import Merchant

ROOT = Path(__file__).resolve().parents[2]
BASES = ("loop_returns_to_whiplash", "whiplash_receipts_to_loop", "loop_asn_backfill")
CHECK_FILE = "returns_sync_merchants.py"

THREE_MERCHANTS_AND_A_TYPO = """
merchants:
  - id: default
    whiplash_customer_id: 100
  - id: acme
    whiplash_customer_id: 4711
    rma_every_minutes: 10
    backfill_at: "03:30"
  - id: globex
    loop_conn_id: loop_globex_eu
    whiplash_conn_id: whiplash_globex
  - id: initech
    whiplash_customer_id: 4712
    warehouse: 2
"""


def bag_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    if text is None:
        monkeypatch.delenv("RETURNS_SYNC_MERCHANTS", raising=False)
    else:
        path = tmp_path / "merchants.yaml"
        path.write_text(textwrap.dedent(text))
        monkeypatch.setenv("RETURNS_SYNC_MERCHANTS", str(path))
    for name in ("RETURNS_SYNC_RMA_SCHEDULE_MINUTES", "RETURNS_SYNC_BACKFILL_CRON"):
        monkeypatch.delenv(name, raising=False)
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture
def three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return bag_for(tmp_path, monkeypatch, THREE_MERCHANTS_AND_A_TYPO)


def errors_by_file(bag: Any) -> dict[str, str]:
    return {Path(path).name: str(error) for path, error in bag.import_errors.items()}


def test_each_good_merchant_gets_the_three_dags_and_default_keeps_todays_ids(three: Any) -> None:
    expected = {base for base in BASES} | {
        f"{base}__{merchant}" for base in BASES for merchant in ("acme", "globex")
    }
    assert set(three.dag_ids) == expected


def test_a_bad_entry_is_one_import_error_naming_entry_and_key(three: Any) -> None:
    errors = errors_by_file(three)
    assert set(errors) == {CHECK_FILE}, errors  # the concern files loaded every good merchant
    assert "entry 4 (id 'initech'), key 'warehouse': unknown key" in errors[CHECK_FILE]
    assert not any(dag_id.endswith("__initech") for dag_id in three.dag_ids)


def test_every_dag_is_tagged_with_its_merchant_and_shaped_like_todays(three: Any) -> None:
    for merchant in ("default", "acme", "globex"):
        for base in BASES:
            dag_id = base if merchant == "default" else f"{base}__{merchant}"
            dag = three.get_dag(dag_id)
            reference = three.get_dag(base)
            assert f"merchant:{merchant}" in dag.tags and "returns-sync" in dag.tags, dag_id
            assert sorted(dag.task_ids) == sorted(reference.task_ids), dag_id
            assert dict(dag.params) == dict(reference.params), dag_id
            assert dag.max_active_runs == 1 and dag.doc_md == reference.doc_md, dag_id


def poll_cron(dag: Any) -> str:
    timetable = dag.timetable
    inner = getattr(timetable, "timetable", timetable)  # AssetOrTimeSchedule wraps the poll
    return str(inner.expression)


def test_schedules_are_staggered_per_merchant_and_follow_its_cadence(three: Any) -> None:
    rma = {
        m: poll_cron(three.get_dag(Merchant(m, "x").dag_id(BASES[0])))
        for m in ("default", "acme", "globex")
    }
    assert rma == {
        "default": staggered_cron(5, "default"),
        "acme": staggered_cron(10, "acme"),  # its own rma_every_minutes
        "globex": staggered_cron(5, "globex"),
    }
    assert rma["globex"] == f"{stagger_minutes('globex', 5)}-59/5 * * * *"
    assert rma["default"] != rma["globex"]  # offsets 4 and 3: not all at once
    receipts = poll_cron(three.get_dag("whiplash_receipts_to_loop__globex"))
    assert receipts == f"{stagger_minutes('globex', 15)}-59/15 * * * *"
    assert poll_cron(three.get_dag("loop_asn_backfill__acme")) == "30 3 * * *"  # backfill_at
    globex_backfill = poll_cron(three.get_dag("loop_asn_backfill__globex"))
    assert globex_backfill == f"{stagger_minutes('globex', 60)} 2 * * *"
    assert globex_backfill == backfill_cron(Merchant("globex", "x"))


def test_without_a_merchants_file_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DeltaTriggerTimetable

    bag = bag_for(tmp_path, monkeypatch, None)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(BASES)
    rma = bag.get_dag(BASES[0]).timetable.timetable
    assert isinstance(rma, DeltaTriggerTimetable)  # today's cadence, not staggered
    assert poll_cron(bag.get_dag(BASES[2])) == "0 2 * * *"


def test_an_unparseable_file_is_one_clear_import_error_and_loads_no_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bag = bag_for(tmp_path, monkeypatch, "merchants:\n  - id: acme\n  bad indent: [\n")
    errors = errors_by_file(bag)
    assert set(errors) == {CHECK_FILE}
    assert "merchants.yaml: not valid YAML" in errors[CHECK_FILE]
    assert bag.dag_ids == []


def test_two_hundred_merchants_build_six_hundred_dags_without_errors(tmp_path: Path) -> None:
    """Each DAG file, in its own process as the dag-processor parses it, builds one DAG per
    merchant at 200 merchants. How long that takes is measured by `bench/bench_merchants.py
    --parts parse` (docs/BENCHMARKS.md), not here."""
    lines = ["merchants:"]
    for number in range(200):
        lines += [f"  - id: m{number:03d}", f"    whiplash_customer_id: {1000 + number}"]
    merchants = tmp_path / "merchants.yaml"
    merchants.write_text("\n".join(lines) + "\n")
    probe = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "print(len(bag.dags), len(bag.import_errors))\n"
    )
    for base in BASES:
        out = subprocess.run(
            [sys.executable, "-c", probe, str(ROOT / "dags" / f"{base}.py")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**_env(), "RETURNS_SYNC_MERCHANTS": str(merchants)},
            check=True,
        ).stdout.split()
        assert (int(out[-2]), int(out[-1])) == (200, 0), base


def test_every_form_field_names_the_cheap_json_schema_dialect(three: Any) -> None:
    """Airflow validates each form field's schema about 16 times per DAG and parse; unnamed,
    the dialect is 2020-12, whose meta-schema check costs 4x draft-07's (dag_defaults.form_field).
    The dialect changes nothing else: a wrong value is still refused, naming the field."""
    from airflow.sdk.definitions.param import ParamValidationError

    from include.returns_sync.dag_defaults import FORM_DIALECT

    for dag in three.dags.values():
        for name, param in dag.params.items():
            assert param.schema.get("$schema") == FORM_DIALECT, (dag.dag_id, name)
    params = three.dags["loop_asn_backfill__acme"].params
    with pytest.raises(ParamValidationError, match="dry_run"):
        params["dry_run"] = "yes"
    with pytest.raises(ParamValidationError, match="start"):
        params["start"] = 20261001


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_a_worker_running_one_task_builds_only_that_tasks_dag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow sets the parsing context when a worker parses a file to run a task."""
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "loop_returns_to_whiplash__acme")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "plan")
    bag = bag_for(tmp_path, monkeypatch, THREE_MERCHANTS_AND_A_TYPO)
    assert bag.dag_ids == ["loop_returns_to_whiplash__acme"]
