"""The compose topology on this machine: Airflow with CeleryExecutor, driven over its REST API.

`AirflowStack` gives every component the same environment, the way the compose file's
`x-airflow-common` block does: PostgreSQL for Airflow's metadata (and Celery results), Redis as
the broker, a separate PostgreSQL database as our state store, connections as
`AIRFLOW_CONN_*` variables, and per-run secrets (JWT secret, Fernet key, admin password). All
components bind to 127.0.0.1 on ports picked at run time. `AirflowApi` talks to the public
REST API (`/api/v2`) with a token from the simple auth manager, as an operator's script would.

`celery_stack` is the whole run as a context manager, shared by the deployment tests (fixture
`celery_stack` in conftest.py) and the restart test (tests/reliability/test_restarts.py):
throw-away PostgreSQL databases and a private Redis database, the sandbox vendors, every
Airflow component; afterwards every process is stopped and the databases are dropped.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests
from cryptography.fernet import Fernet

from include.returns_sync.deploy.state_db import ensure_database
from include.returns_sync.state import StateStore
from tests.deploy.processes import ProcessGroup, free_port, tail
from tests.deploy.services import PostgresDatabases, private_redis_db, redis_url

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin"
WORKERS = ("worker1", "worker2")
TERMINAL = frozenset({"success", "failed"})
DAG_IDS = ("loop_returns_to_whiplash", "loop_asn_backfill", "whiplash_receipts_to_loop")
SEEDED_RETURNS = 60
POOL_SLOTS = 4  # creation tasks run on both workers at once (2 worker processes each)
# What the deployment tests run with; `celery_stack(settings=...)` overrides single values.
SETTINGS = {
    "RETURNS_SYNC_BATCH_SIZE": "4",  # several mapped tasks for two workers
    "RETURNS_SYNC_API_POOL_SLOTS": str(POOL_SLOTS),
    "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
    "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.01",
    "RETURNS_SYNC_HTTP_TIMEOUT": "10",
}


@dataclass(frozen=True)
class StackConfig:
    """What differs between runs: where the databases and the broker are, and the vendors."""

    home: Path
    metadata_url: str  # SQLAlchemy URL of Airflow's metadata database
    broker_url: str
    state_conn: str  # the `returns_sync_db` connection (URI)
    connections: Mapping[str, str]  # AIRFLOW_CONN_* for the vendors
    settings: Mapping[str, str]  # RETURNS_SYNC_* knobs
    worker_concurrency: int = 2
    queue: str = "default"


class AirflowStack:
    """api-server, scheduler, dag-processor, triggerer and Celery workers, all on loopback."""

    def __init__(self, config: StackConfig, processes: ProcessGroup) -> None:
        self.config = config
        self.processes = processes
        self.api_port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.env = self._environment()

    def _environment(self) -> dict[str, str]:
        cfg = self.config
        passwords = cfg.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN: self.password}))
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "RETURNS_SYNC", "_AIRFLOW"))
        }
        env = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": str(cfg.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": cfg.metadata_url,
            "AIRFLOW__CELERY__BROKER_URL": cfg.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + cfg.metadata_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cfg.worker_concurrency),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": cfg.queue,
            # Sized for 2 shared cores.
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # Only the runs the test triggers: no schedule or asset-triggered runs in between.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_RETURNS_SYNC_DB": cfg.state_conn,
            **cfg.connections,
            **cfg.settings,
        }
        return env

    def airflow(self, *args: str, timeout: float = 240) -> str:
        """Run one `airflow` CLI command to completion (migrations); its output on failure."""
        log = self.config.home / f"cli-{args[0]}-{args[1] if len(args) > 1 else ''}.log"
        with log.open("wb") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if proc.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{tail(log, 60)}")
        return log.read_text()

    def start(self) -> None:
        """Start every long-running component (after `airflow db migrate`)."""
        af = [sys.executable, "-m", "airflow"]
        start = self.processes.start
        api = [*af, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port)]
        start("api-server", api, self.env, ROOT)
        start("scheduler", [*af, "scheduler", "--skip-serve-logs"], self.env, ROOT)
        start("dag-processor", [*af, "dag-processor"], self.env, ROOT)
        start("triggerer", [*af, "triggerer", "--skip-serve-logs"], self.env, ROOT)
        for name in WORKERS:
            worker = [*af, "celery", "worker", "--celery-hostname", f"{name}@%h"]
            worker += ["--queues", self.config.queue, "--skip-serve-logs"]
            start(name, [*worker, "--without-gossip", "--without-mingle"], self.env, ROOT)

    def workers_ready(self) -> bool:
        """Every running Celery worker announced `ready.` in its (current) log."""
        workers = [c for c in self.processes.children if c.name in WORKERS]
        return len(workers) == len(WORKERS) and all(" ready." in c.log_text() for c in workers)

    def workloads_per_worker(self) -> dict[str, int]:
        """How many task workloads each Celery worker executed (its logs, restarts included)."""
        counts = dict.fromkeys(WORKERS, 0)
        for child in [*self.processes.retired, *self.processes.children]:
            if child.name in WORKERS:
                counts[child.name] += child.log_text().count("Executing workload in Celery")
        return counts

    def worker_running(self, ti_id: str) -> str | None:
        """The Celery worker whose process tree runs task instance `ti_id` right now.

        The task process names itself `airflow worker -- <task instance id>` (Task SDK); it is
        a descendant of the worker that received the workload, in a process group of its own.
        """
        for child in self.processes.children:
            if child.name not in WORKERS:
                continue
            for process in child.tree():
                try:
                    if ti_id in " ".join(process.cmdline()):
                        return child.name
                except psutil.Error:
                    continue
        return None

    def kill(self, name: str) -> list[int]:
        """SIGKILL one component (`scheduler`, `worker1`, ...) with everything it started."""
        return self.processes.kill(name)

    def restart(self, name: str) -> None:
        """Start a killed component again, with the same command and environment."""
        self.processes.restart(name)


class AirflowApi:
    """A small client for Airflow's public REST API (`/api/v2`) with a bearer token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()

    def healthy(self) -> bool:
        try:
            response = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def login(self) -> None:
        response = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        assert response.status_code in (200, 201), f"login failed: {response.text}"
        token = response.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/api/v2{path}", json=body, timeout=30
        )
        if response.status_code not in ok:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def dag_known(self, dag_id: str) -> bool:
        response = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=30)
        return response.status_code == 200

    def create_pool(self, name: str, slots: int, description: str) -> None:
        body = {"name": name, "slots": slots, "description": description}
        self.call("POST", "/pools", {**body, "include_deferred": False}, ok=(201,))

    def unpause(self, dag_id: str) -> None:
        dag = self.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        assert dag["is_paused"] is False

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        body = {"logical_date": datetime.now(UTC).isoformat(), "conf": conf or {}}
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", body)
        run_id: str = run["dag_run_id"]
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        state: str = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        body = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        instances: list[dict[str, Any]] = body["task_instances"]
        return instances

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict[str, Any]]:
        """Every attempt of one task instance (earlier ones from its history), oldest first."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        attempts: list[dict[str, Any]] = self.call("GET", path)["task_instances"]
        return sorted(attempts, key=lambda attempt: int(attempt["try_number"]))

    def wait_for_runs(
        self, runs: list[tuple[str, str]], processes: ProcessGroup, timeout: float
    ) -> dict[tuple[str, str], str]:
        """Poll until every (dag_id, run_id) is success or failed; their final states."""
        states: dict[tuple[str, str], str] = {}

        def finished() -> bool:
            for run in runs:
                states[run] = self.run_state(*run)
            return all(state in TERMINAL for state in states.values())

        processes.wait_for(f"DAG runs {runs}", finished, timeout, interval=1.0)
        return states

    def failure_details(self, dag_id: str, run_id: str) -> str:
        """Task states of a run, for an assertion message."""
        rows = self.task_instances(dag_id, run_id)
        return ", ".join(f"{r['task_id']}[{r.get('map_index', -1)}]={r['state']}" for r in rows)


@dataclass
class RunningStack:
    """What the end-to-end tests drive and inspect."""

    api: AirflowApi
    stack: AirflowStack
    processes: ProcessGroup
    sandbox: dict[str, Any]  # the sandbox's URLs and credentials
    state_url: str
    started_in: float

    @property
    def home(self) -> Path:
        """AIRFLOW_HOME of every component (task logs under `logs/`)."""
        return self.stack.config.home


# Starts (or points at) the vendors: gets the process group and a work folder, returns the
# sandbox's URLs and credentials (the keys of the sandbox CLI's `--urls-file`).
SandboxStarter = Callable[[ProcessGroup, Path], dict[str, Any]]


def sandbox_process(seed: int = 42, returns: int = SEEDED_RETURNS) -> SandboxStarter:
    """The sandbox CLI as one more child process, with `returns` Loop returns seeded today."""

    def start(processes: ProcessGroup, workdir: Path) -> dict[str, Any]:
        urls_file = workdir / "sandbox-urls.json"
        argv = [sys.executable, "-m", "include.returns_sync.sandbox", "--seed", str(seed)]
        argv += ["--loop-port", "0", "--whiplash-port", "0"]  # any free ports
        argv += ["--seed-day", str(returns), "--urls-file", str(urls_file)]
        processes.start("sandbox", argv, {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, ROOT)
        return wait_for_file(urls_file, processes)

    return start


@contextmanager
def celery_stack(
    workdir: Path,
    start_sandbox: SandboxStarter | None = None,
    settings: Mapping[str, str] | None = None,
    pool_slots: int = POOL_SLOTS,
) -> Iterator[RunningStack]:
    """The compose topology, running, until the block ends; then nothing of it is left.

    Creates two PostgreSQL databases (Airflow metadata, our state store, the latter the way the
    compose init job does it) and claims a Redis database, starts the vendors
    (`start_sandbox`, by default `sandbox_process()`) and every Airflow component, and waits
    until the API answers, the DAGs are parsed and both workers are ready. Whatever happens, it
    stops every process it started and drops the databases; when the block ended normally it
    also checks that no process and no database is left. PostgreSQL or Redis missing: skip,
    or fail when CI=true.
    """
    started = time.monotonic()
    databases = PostgresDatabases()
    databases.check()
    processes = ProcessGroup(workdir / "logs")
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

                sandbox = (start_sandbox or sandbox_process())(processes, workdir)
                urls = {
                    "metadata": metadata.render_as_string(hide_password=False),
                    "broker": redis_url(redis_db),
                    "state": state_url,
                }
                config = StackConfig(
                    home=workdir / "airflow",
                    metadata_url=urls["metadata"],
                    broker_url=urls["broker"],
                    state_conn=urls["state"],
                    connections=vendor_connections(sandbox),
                    settings={**SETTINGS, **(settings or {})},
                )
                stack, api = _start_airflow(config, processes, pool_slots)
                yield RunningStack(
                    api, stack, processes, sandbox, state_url, time.monotonic() - started
                )
            finally:  # before the broker database is flushed and the databases dropped
                processes.stop_all()
    finally:
        databases.drop_all()
    leftovers = processes.leftovers()
    assert not leftovers, f"processes left running after the test: {leftovers}"
    for role in ("meta", "state"):
        assert not databases.exists(role), f"database {databases.name(role)} was not dropped"


def _start_airflow(
    config: StackConfig, processes: ProcessGroup, pool_slots: int
) -> tuple[AirflowStack, AirflowApi]:
    """Migrate, start every component, wait until it can run the DAGs; create the pools."""
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
    api.create_pool("loop_api", pool_slots, "Loop API: 300 requests/min per key")
    api.create_pool("whiplash_api", pool_slots, "Whiplash API: 10 requests/s per account")
    return stack, api


def vendor_connections(sandbox: Mapping[str, Any]) -> dict[str, str]:
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


def sandbox_admin(admin_url: str, method: str, path: str, body: Any = None) -> Any:
    """Call the sandbox's admin API (`/_sandbox/...` on the Loop port)."""
    response = requests.request(method, f"{admin_url}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def wait_for_file(path: Path, processes: ProcessGroup, timeout: float = 30) -> dict[str, Any]:
    processes.wait_for(f"{path}", lambda: path.exists() and path.stat().st_size > 0, timeout)
    time.sleep(0.1)  # written in one call, but let the writer finish
    data: dict[str, Any] = json.loads(path.read_text())
    return data
