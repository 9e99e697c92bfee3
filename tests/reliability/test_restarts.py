"""Killing the scheduler and a Celery worker mid-run loses nothing and doubles nothing (issue 8.5).

The production topology of `tests/deploy` (CeleryExecutor, PostgreSQL for Airflow's metadata
and for our state store, Redis as the broker, api-server, scheduler, dag-processor, triggerer
and two Celery workers, driven over the REST API) syncs 400 seeded sandbox returns. While
`loop_returns_to_whiplash` is creating RMAs (between 10 % and 50 % of them exist), the test
finds the Celery worker whose process tree runs a `create_rmas` task instance right now (the
task process names itself after the task instance id) and SIGKILLs that worker with everything
it started: its process group (main process, pool processes, task supervisors) and the task
processes, which the supervisor puts in process groups of their own. Then it SIGKILLs the
scheduler's process group. Nothing gets a chance to clean up or hand work over. The scheduler
and the worker are started again with the same command and environment.

Airflow must notice on its own: the restarted scheduler marks the dead scheduler's job failed
and adopts its task instances (orphan reset), then fails the task instance whose process died
because its heartbeat stopped (heartbeat timeout) and retries it; the retry takes over the
killed attempt's claims and looks Whiplash up before creating anything. Celery does not
redeliver the killed worker's unacknowledged message within the test (Airflow's default Redis
visibility timeout is 24 h), so the new attempt is Airflow's retry.

Checked: the interrupted run itself ends `success`; the killed task instance really ran again
(an attempt after the killed one, which succeeded, and a task log for each under
`$AIRFLOW_HOME/logs`); every return that needs an RMA has exactly one, recorded in the state
store, and none other has one (`check_outcome`); no secret (distinctive Loop API key and
Whiplash client secret) in any file under `$AIRFLOW_HOME` (task logs, reports) or in the
components' own logs; nothing is left running afterwards.

Timing knobs (environment of every component): heartbeat timeout 20 s instead of 300 s,
checked every 3 s; a scheduler without a heartbeat for 10 s counts as dead, orphans are looked
for every 5 s; a dead creation claim is stale at once (15 min in production); Airflow retries
after 2 s instead of 30 s; every vendor request is slowed by 100 ms so that creating the RMAs
lasts long enough to be interrupted. About 70 s in all on 2 cores (stack start included).
Marked `slow` and `postgres`; without PostgreSQL or Redis it skips, or fails when CI=true.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.sandbox import FaultConfig, Sandbox
from include.returns_sync.sandbox.chaos import ADMIN_PREFIX
from include.returns_sync.state import StateStore
from tests.reliability.leaks import distinctive, files_under, find_leaks
from tests.reliability.outcome import check_outcome
from tests.support.airflow_stack import SandboxStarter, celery_stack
from tests.support.dag_harness import RMA_DAG, rmas_by_loop_id
from tests.support.processes import ProcessGroup

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

RETURNS = 400
RUN_TIMEOUT = 420
SETTINGS = {
    "RETURNS_SYNC_BATCH_SIZE": "20",
    "RETURNS_SYNC_MAX_UNMAPPABLE": "0",
    "RETURNS_SYNC_STALE_CLAIM_MINUTES": "0",
    # A dead task is failed (and retried) 20 s after its last heartbeat; a dead scheduler's
    # task instances are adopted by the new one 10 s after the old one's last heartbeat.
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
}


def _in_process(sandbox: Sandbox) -> SandboxStarter:
    """Point the stack at a sandbox served by this process (its truth stays inspectable)."""

    def start(processes: ProcessGroup, workdir: Path) -> dict[str, Any]:
        return {
            "loop_url": sandbox.loop_url,
            "whiplash_url": sandbox.whiplash_url,
            "admin_url": f"{sandbox.loop_host_url}{ADMIN_PREFIX}",
            "loop_api_key": sandbox.loop_api_key,
            "whiplash_client_id": sandbox.whiplash_client_id,
            "whiplash_client_secret": sandbox.whiplash_client_secret,
        }

    return start


def test_killing_the_scheduler_and_a_celery_worker_mid_run_still_gives_one_rma_each(
    tmp_path: Path,
) -> None:
    secrets = {
        "loop api key": distinctive("loop-api-key"),
        "whiplash client secret": distinctive("whiplash-client-secret"),
    }
    with Sandbox(
        seed=31,
        strict=True,
        loop_api_key=secrets["loop api key"],
        whiplash_client_secret=secrets["whiplash client secret"],
    ) as sandbox:
        need = sandbox.seed_day(n=RETURNS).rma_ids()
        sandbox.set_faults(FaultConfig(rate=1.0, kinds=("slow",), slow_seconds=0.1))
        with celery_stack(tmp_path, _in_process(sandbox), settings=SETTINGS) as running:
            api, stack, processes = running.api, running.stack, running.processes
            api.unpause(RMA_DAG)
            started = time.monotonic()
            run_id = api.trigger(RMA_DAG)

            # Mid-run: RMAs are being created and a worker runs a creation task right now.
            victim: dict[str, Any] = {}

            def creating() -> bool:
                made = len(rmas_by_loop_id(sandbox))
                assert made < len(need) // 2, f"{made} RMAs already: the run went too fast"
                if made < len(need) // 10:
                    return False
                running_now = [
                    ti
                    for ti in api.task_instances(RMA_DAG, run_id)
                    if ti["task_id"] == "create_rmas" and ti["state"] == "running"
                ]
                # The latest to start has the most of its batch left: it cannot finish
                # between this look and the kill.
                for ti in sorted(running_now, key=lambda t: str(t["start_date"]), reverse=True):
                    worker = stack.worker_running(ti["id"])
                    if worker is not None:
                        victim.update(ti=ti, worker=worker)
                        return True
                return False

            processes.wait_for("create_rmas running on a worker", creating, 300, interval=0.2)
            ti, worker = victim["ti"], victim["worker"]
            killed = {worker: stack.kill(worker), "scheduler": stack.kill("scheduler")}
            at_kill = len(rmas_by_loop_id(sandbox))
            assert stack.worker_running(ti["id"]) is None, "the task survived its worker"
            killed_at = time.monotonic()
            killed_after = killed_at - started
            stack.restart("scheduler")
            stack.restart(worker)
            processes.wait_for(f"{worker} to be ready again", stack.workers_ready, 120)

            states = api.wait_for_runs([(RMA_DAG, run_id)], processes, timeout=RUN_TIMEOUT)
            final = states[(RMA_DAG, run_id)]
            recovered_in = time.monotonic() - killed_at
            details = api.failure_details(RMA_DAG, run_id)
            attempts = api.tries(RMA_DAG, run_id, "create_rmas", ti["map_index"])
            tries = {
                f"{t['task_id']}[{t['map_index']}]": int(t["try_number"])
                for t in api.task_instances(RMA_DAG, run_id)
            }
            store = StateStore.from_url(running.state_url)
            try:
                outcome = check_outcome(sandbox, store)
                records = store.get_sync_records(need)
            finally:
                store.dispose()
            rmas = rmas_by_loop_id(sandbox)
            scheduler_log = processes.child("scheduler").log_text()
            per_worker = stack.workloads_per_worker()
            home, component_logs = running.home, processes.log_dir
            run_seconds = time.monotonic() - started
        leaks = find_leaks(secrets, files_under(home, component_logs))

    victim_try = int(ti["try_number"])
    figures = {
        "returns": RETURNS,
        "need_rma": len(need),
        "rmas_when_killed": at_kill,
        "killed_task": f"create_rmas[{ti['map_index']}] try {victim_try} on {worker}",
        "processes_killed": {name: len(pids) for name, pids in killed.items()},
        "attempts_of_killed_task": [(a["try_number"], a["state"]) for a in attempts],
        "task_attempts_beyond_the_first": sum(max(0, t - 1) for t in tries.values()),
        "heartbeat_timeouts_logged": scheduler_log.count("TIs without heartbeat"),
        "run": final,
        "killed_after_seconds": round(killed_after),
        "recovered_in_seconds": round(recovered_in),
        "run_seconds": round(run_seconds),
        "adopted_after_restart": sum(str(r.status) == "adopted" for r in records.values()),
        "workloads_per_worker": per_worker,
        "lost": outcome.lost,
        "duplicates": outcome.duplicates,
        "rmas": sum(rmas.values()),
    }
    print("\nrestart run figures:\n" + json.dumps(figures, indent=2))
    if os.environ.get("RETURNS_SYNC_RESTART_FIGURES"):
        Path(os.environ["RETURNS_SYNC_RESTART_FIGURES"]).write_text(json.dumps(figures))

    assert final == "success", details
    assert 0 < at_kill < len(need)
    assert len(killed[worker]) >= 3, killed  # the worker, a pool process, the task process
    # The killed attempt was not the last one: Airflow ran the task instance again.
    assert attempts[-1]["state"] == "success", attempts
    assert int(attempts[-1]["try_number"]) > victim_try, attempts
    assert any(int(a["try_number"]) == victim_try for a in attempts[:-1]), attempts
    task_logs = home / "logs" / f"dag_id={RMA_DAG}" / f"run_id={run_id}" / "task_id=create_rmas"
    logged = sorted(p.name for p in task_logs.glob(f"map_index={ti['map_index']}/attempt=*.log"))
    assert len(logged) >= 2, f"expected a task log per attempt, found {logged}"
    assert outcome.problems() == {}
    assert set(rmas) == set(need) and set(rmas.values()) == {1}
    assert leaks == []
    assert any((home / "logs").rglob("*.log")), "the workers wrote no task log"
