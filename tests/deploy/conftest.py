"""Fixtures for the deployment tests: the Celery stack on this machine, with guaranteed cleanup.

`celery_stack` creates two PostgreSQL databases (Airflow metadata, our state store) and claims
a Redis database, starts the sandbox vendors and every Airflow component, and waits until the
API answers, the DAGs are parsed and both workers are ready. Whatever happens, it stops every
process group it started and drops the databases; the test then checks that nothing is left.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.returns_sync.deploy.state_db import ensure_database
from include.returns_sync.state import StateStore
from tests.deploy.airflow_stack import (
    ADMIN,
    ROOT,
    AirflowApi,
    AirflowStack,
    RunningStack,
    StackConfig,
    wait_for_file,
)
from tests.deploy.processes import ProcessGroup, group_members
from tests.deploy.services import PostgresDatabases, private_redis_db, redis_url

DAG_IDS = ("loop_returns_to_whiplash", "loop_asn_backfill", "whiplash_receipts_to_loop")
SEEDED_RETURNS = 60
POOL_SLOTS = 4  # creation tasks run on both workers at once (2 worker processes each)


@pytest.fixture
def celery_stack(tmp_path: Path) -> Iterator[RunningStack]:
    started = time.monotonic()
    databases = PostgresDatabases()
    databases.check()
    processes = ProcessGroup(tmp_path / "logs")
    try:
        with private_redis_db() as redis_db:
            try:
                metadata = databases.create("meta")
                # The state store's database is created the way the compose init job does it.
                state_url = databases.url("state").render_as_string(hide_password=False)
                databases.adopt("state")
                assert ensure_database(databases.url("state")) is True
                store = StateStore.from_url(state_url)
                store.migrate()
                store.dispose()

                urls_file = tmp_path / "sandbox-urls.json"
                sandbox_cmd = [sys.executable, "-m", "include.returns_sync.sandbox", "--seed", "42"]
                sandbox_cmd += ["--loop-port", "0", "--whiplash-port", "0"]  # any free ports
                sandbox_cmd += ["--seed-day", str(SEEDED_RETURNS), "--urls-file", str(urls_file)]
                sandbox_env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
                processes.start("sandbox", sandbox_cmd, sandbox_env, ROOT)
                sandbox = wait_for_file(urls_file, processes)
                urls = {
                    "metadata": metadata.render_as_string(hide_password=False),
                    "broker": redis_url(redis_db),
                    "state": state_url,
                }
                stack, api = _start_airflow(tmp_path / "airflow", processes, sandbox, urls)
                yield RunningStack(
                    api, stack, processes, sandbox, state_url, time.monotonic() - started
                )
            finally:  # before the broker database is flushed and the databases dropped
                processes.stop_all()
    finally:
        databases.drop_all()
    pgids = [child.popen.pid for child in processes.children]
    leftovers = {pgid: group_members(pgid) for pgid in pgids if group_members(pgid)}
    assert not leftovers, f"processes left running after the test: {leftovers}"
    for role in ("meta", "state"):
        assert not databases.exists(role), f"database {databases.name(role)} was not dropped"


def _start_airflow(
    home: Path, processes: ProcessGroup, sandbox: dict[str, Any], urls: dict[str, str]
) -> tuple[AirflowStack, AirflowApi]:
    """Migrate, start every component, wait until it can run the DAGs; create the pools."""
    config = StackConfig(
        home=home,
        metadata_url=urls["metadata"],
        broker_url=urls["broker"],
        state_conn=urls["state"],
        connections=_vendor_connections(sandbox),
        settings={
            "RETURNS_SYNC_BATCH_SIZE": "4",  # several mapped tasks for two workers
            "RETURNS_SYNC_API_POOL_SLOTS": str(POOL_SLOTS),
            "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
            "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.01",
            "RETURNS_SYNC_HTTP_TIMEOUT": "10",
        },
    )
    config.home.mkdir()
    stack = AirflowStack(config, processes)
    stack.airflow("db", "migrate")
    stack.start()
    api = AirflowApi(stack.base_url, ADMIN, stack.password)
    processes.wait_for("the api-server", api.healthy, timeout=120)
    api.login()
    processes.wait_for("the three DAGs to be parsed", lambda: all(map(api.dag_known, DAG_IDS)), 120)
    processes.wait_for("both Celery workers", stack.workers_ready, timeout=120)
    # Pools as the compose init job sets them, both with RETURNS_SYNC_API_POOL_SLOTS.
    api.create_pool("loop_api", POOL_SLOTS, "Loop API: 300 requests/min per key")
    api.create_pool("whiplash_api", POOL_SLOTS, "Whiplash API: 10 requests/s per account")
    return stack, api


def _vendor_connections(sandbox: dict[str, Any]) -> dict[str, str]:
    """`loop_default` and `whiplash_default` pointed at the sandbox, as AIRFLOW_CONN_* JSON."""
    # The sandbox enforces no rate limit here; a generous per-process throttle keeps the
    # hooks' rate limiter in the path without making the test wait on it.
    fast = {"rate_limit": 20}
    loop = {
        "conn_type": "http",
        "host": sandbox["loop_url"],
        "password": sandbox["loop_api_key"],
        "extra": fast,
    }
    whiplash = {
        "conn_type": "http",
        "host": sandbox["whiplash_url"],
        "login": sandbox["whiplash_client_id"],
        "password": sandbox["whiplash_client_secret"],
        "extra": fast,
    }
    return {
        "AIRFLOW_CONN_LOOP_DEFAULT": json.dumps(loop),
        "AIRFLOW_CONN_WHIPLASH_DEFAULT": json.dumps(whiplash),
    }
