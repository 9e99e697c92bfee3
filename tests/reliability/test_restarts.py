"""Killing the scheduler and a worker mid-run loses nothing and doubles nothing (issue 8, item 5).

A real Airflow (api-server, scheduler, dag-processor, triggerer; LocalExecutor; a fresh
PostgreSQL database for its metadata and another for our state store) syncs a seeded sandbox.
While `loop_returns_to_whiplash` is creating RMAs, a task process running `create_rmas` is
SIGKILLed, then the scheduler with its whole process group (its executor workers and every task
they run). The scheduler is started again; Airflow finds the dead task instances (heartbeat
timeout, orphan reset) and runs them again; the run completes. Then: every return that needs an
RMA has exactly one, recorded in the state store; none other has one; and the task logs the
scheduler wrote under `$AIRFLOW_HOME/logs` hold no secret.

Timing knobs: heartbeat timeout 20 s instead of 300 s, a dead creation claim is stale at once
(15 min in production), every vendor request is slowed by 100 ms so the run lasts long enough
to be interrupted. Marked `slow` (about two minutes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from include.returns_sync.sandbox import FaultConfig, Sandbox
from include.returns_sync.state import StateStore
from tests.reliability.leaks import distinctive, files_under, find_leaks
from tests.reliability.local_airflow import (
    PG_ADMIN_DSN,
    AirflowApi,
    Databases,
    LocalAirflow,
    wait_until,
)
from tests.reliability.pipeline import RMA_DAG, check_outcome, rmas_by_loop_id

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

RETURNS = 400
BATCH_SIZE = 20
TERMINAL = ("success", "failed")


def _require_postgres() -> None:
    try:
        psycopg2.connect(PG_ADMIN_DSN, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required for the restart test: {exc}")
        pytest.skip(f"PostgreSQL is not reachable ({exc}); CI is not 'true'")


@pytest.fixture
def databases() -> Iterator[Databases]:
    _require_postgres()
    made = Databases()
    try:
        yield made
    finally:
        made.drop_all()
        assert not [name for name in made.created if made.exists(name)], "a database survived"


def _connections(sandbox: Sandbox, state_url: str) -> dict[str, str]:
    fast = {"rate_limit": 0}
    return {
        "AIRFLOW_CONN_LOOP_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": sandbox.loop_url,
                "password": sandbox.loop_api_key,
                "extra": fast,
            }
        ),
        "AIRFLOW_CONN_WHIPLASH_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "host": sandbox.whiplash_url,
                "login": sandbox.whiplash_client_id,
                "password": sandbox.whiplash_client_secret,
                "extra": fast,
            }
        ),
        "AIRFLOW_CONN_RETURNS_SYNC_DB": state_url.replace("+psycopg2", ""),
    }


SETTINGS = {
    "RETURNS_SYNC_BATCH_SIZE": str(BATCH_SIZE),
    "RETURNS_SYNC_MAX_UNMAPPABLE": "0",
    "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
    "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.01",
    "RETURNS_SYNC_HTTP_TIMEOUT": "10",
    "RETURNS_SYNC_STALE_CLAIM_MINUTES": "0",
    # A dead task is noticed after 20 s, a dead scheduler's tasks are reset after 10 s.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}


def _run_until_done(api: AirflowApi, airflow: LocalAirflow, run_id: str, timeout: float) -> str:
    states: list[str] = []

    def finished() -> bool:
        airflow.assert_running()
        states.append(api.run_state(RMA_DAG, run_id))
        return states[-1] in TERMINAL

    wait_until(f"run {run_id} to finish", finished, timeout, every=1.0)
    return states[-1]


def test_killing_the_scheduler_and_a_worker_mid_run_still_gives_one_rma_each(
    tmp_path: Path, databases: Databases
) -> None:
    home = tmp_path / "airflow"
    airflow: LocalAirflow | None = None
    leftovers: list[int] = []
    try:
        with Sandbox(
            seed=31,
            loop_api_key=distinctive("loop-api-key"),
            whiplash_client_secret=distinctive("whiplash-client-secret"),
        ) as sandbox:
            truth = sandbox.seed_day(n=RETURNS)
            need = truth.rma_ids()
            sandbox.set_faults(FaultConfig(rate=1.0, kinds=("slow",), slow_seconds=0.1))
            metadata, state = databases.create("meta"), databases.create("state")
            airflow = LocalAirflow(home, metadata, {**_connections(sandbox, state), **SETTINGS})
            airflow.migrate()
            airflow.start_all()
            api = AirflowApi(airflow)
            wait_until("the api-server", api.healthy, 180)
            api.login()
            wait_until(f"{RMA_DAG} to be parsed", lambda: api.knows(RMA_DAG), 180)
            for pool in ("loop_api", "whiplash_api"):
                body = {"name": pool, "slots": 2, "description": pool, "include_deferred": False}
                api.call("POST", "/pools", body, ok=(201,))
            api.call("PATCH", f"/dags/{RMA_DAG}", {"is_paused": False})
            run_id = api.trigger(RMA_DAG)

            # Mid-run: RMAs are being created and a creation task is running right now.
            victims: list[Any] = []

            def creating() -> bool:
                airflow.assert_running()
                made = len(rmas_by_loop_id(sandbox))
                if not len(need) // 10 <= made < len(need) // 2:
                    return False
                running = [
                    ti["id"]
                    for ti in api.task_instances(RMA_DAG, run_id)
                    if ti["task_id"] == "create_rmas" and ti["state"] == "running"
                ]
                victims[:] = [p for ti_id in running for p in airflow.processes_running(ti_id)]
                return bool(victims)

            wait_until("create_rmas to be running", creating, 240, every=0.2)
            for process in victims:  # a worker dies in the middle of its batch
                process.kill()
            airflow.kill("scheduler")  # ...then the scheduler, with all it had started
            at_kill = len(rmas_by_loop_id(sandbox))
            airflow.start("scheduler")

            final = _run_until_done(api, airflow, run_id, timeout=420)
            runs = [(run_id, final)]
            if final != "success":  # the next run finishes what a failed one left
                again = api.trigger(RMA_DAG)
                runs.append((again, _run_until_done(api, airflow, again, timeout=300)))
            tries = {
                f"{ti['task_id']}[{ti.get('map_index', -1)}]": ti.get("try_number")
                for ti in api.task_instances(RMA_DAG, run_id)
            }
            store = StateStore.from_url(state.replace("+psycopg2", ""))
            outcome = check_outcome(sandbox, store)
            rmas = rmas_by_loop_id(sandbox)
            secrets = {"loop api key": sandbox.loop_api_key}
            secrets["whiplash client secret"] = sandbox.whiplash_client_secret
            records = store.get_sync_records(need)
            figures = {
                "returns": RETURNS,
                "need_rma": len(need),
                "rmas_when_killed": at_kill,
                "task_processes_killed": len(victims),
                "runs": runs,
                "task_attempts_beyond_the_first": sum(max(0, (t or 1) - 1) for t in tries.values()),
                "adopted_after_restart": sum(str(r.status) == "adopted" for r in records.values()),
                "lost": outcome.lost,
                "duplicates": outcome.duplicates,
            }
            print("\nrestart run figures:\n" + json.dumps(figures, indent=2))
            if os.environ.get("RETURNS_SYNC_RESTART_FIGURES"):
                Path(os.environ["RETURNS_SYNC_RESTART_FIGURES"]).write_text(json.dumps(figures))
            assert runs[-1][1] == "success", airflow.logs()
            assert 0 < at_kill < len(need)
            assert max(t or 0 for t in tries.values()) >= 2, tries  # Airflow did run some again
            assert outcome.problems() == {}
            assert set(rmas) == set(need) and set(rmas.values()) == {1}
            assert find_leaks(secrets, files_under(home / "logs", home)) == []
            assert any((home / "logs").rglob("*.log")), "the scheduler wrote no task log"
    finally:
        if airflow is not None:
            leftovers = airflow.stop_all()
    assert leftovers == [], f"processes left running: {leftovers}"
