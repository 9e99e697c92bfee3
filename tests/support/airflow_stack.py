"""Real Airflow 3 on this machine for the end-to-end tests and the webhook benchmark.

Unit tests run tasks in-process; what only shows with Airflow's own components (executors,
heartbeats, the triggerer, the plugin's endpoints in the api-server, the REST API) needs them
as separate processes. This module is the one place that knows how to configure, start, watch
and stop them, for both topologies the tests use:

* CeleryExecutor, the compose topology (`celery_stack`): PostgreSQL for Airflow's metadata (and
  Celery results), Redis as the broker, two Celery workers, a separate PostgreSQL database as our
  state store. Used by the deployment tests (fixture `celery_stack` in tests/deploy/conftest.py)
  and the restart test (tests/reliability/test_restarts.py).
* LocalExecutor with SQLite metadata, like `scripts/ui`: `StackConfig` without a broker. Used by
  `tests/support/webhook_stack.py` (the webhook end-to-end test and its latency benchmark) and
  `bench/bench_merchants.py` (parse time and memory at 200 merchants).

Many merchants (issue 13): `MerchantSetup` serves every merchant of a sandbox started with
`--merchants N` from one deployment: a merchants file (`RETURNS_SYNC_MERCHANTS`, `StackConfig.
merchants_file`) with one entry per merchant, all in the sandbox's one Whiplash account (each its
own customer id), and a `loop_<id>` connection per merchant (`merchant_connections`). Revoked
credentials are a wrong API key on that merchant's Loop connection. Without it, nothing changes.

`StackConfig` says what differs (executor, metadata database, DAG files, workers, connections,
settings). `AirflowStack` gives every component the same environment, the way the compose
file's `x-airflow-common` block does: connections as `AIRFLOW_CONN_*` variables, per-run secrets
(JWT secret, Fernet key, admin password), every component bound to 127.0.0.1 on a port picked
at run time, each one a child of a `ProcessGroup` so that nothing outlives the test.
`AirflowApi` talks to the public REST API (`/api/v2`) with a token from the simple auth manager,
as an operator's script would.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml
from cryptography.fernet import Fernet

from include.returns_sync.deploy.pools import POOLS, expected_slots
from include.returns_sync.deploy.state_db import ensure_database
from include.returns_sync.merchants import load_merchants
from include.returns_sync.sandbox.connections import airflow_connections
from include.returns_sync.state import StateStore
from tests.support.processes import ProcessGroup, free_port, tail
from tests.support.services import PostgresDatabases, private_redis_db, redis_url

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_PARTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
WORKERS = ("worker1", "worker2")
TERMINAL = frozenset({"success", "failed"})
ACTIVE = frozenset({"queued", "running"})
DAG_IDS = ("loop_returns_to_whiplash", "loop_asn_backfill", "whiplash_receipts_to_loop")
SEEDED_RETURNS = 60
POOL_SLOTS = 4  # creation tasks run on both workers at once (2 worker processes each)
# What the deployment tests run with; `celery_stack(settings=...)` overrides single values.
SETTINGS = {
    # Sized for 2 shared cores.
    "AIRFLOW__CORE__PARALLELISM": "8",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    # Only the runs the test triggers: no schedule or asset-triggered runs in between.
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    "RETURNS_SYNC_BATCH_SIZE": "4",  # several mapped tasks for two workers
    "RETURNS_SYNC_API_POOL_SLOTS": str(POOL_SLOTS),
    "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
    "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.01",
    "RETURNS_SYNC_HTTP_TIMEOUT": "10",
}


@dataclass(frozen=True)
class StackConfig:
    """What differs between topologies and runs.

    With a `broker_url` the executor is CeleryExecutor (Redis broker, results in the metadata
    database, one Celery worker per name in `workers`), without one it is LocalExecutor.
    """

    home: Path  # AIRFLOW_HOME of every component (task logs under `logs/`)
    state_conn: str  # the `returns_sync_db` connection (URI)
    connections: Mapping[str, str]  # AIRFLOW_CONN_* for the vendors
    settings: Mapping[str, str]  # RETURNS_SYNC_* knobs and AIRFLOW__* options; applied last
    metadata_url: str | None = None  # Airflow's metadata database; None: SQLite in `home`
    broker_url: str | None = None
    workers: tuple[str, ...] = ()
    dag_files: tuple[str, ...] | None = None  # only these files of dags/; None: all of them
    merchants_file: Path | None = None  # RETURNS_SYNC_MERCHANTS; None: the default merchant only
    pool_slots: int = 2
    worker_concurrency: int = 2
    queue: str = "default"

    @property
    def executor(self) -> str:
        return "CeleryExecutor" if self.broker_url else "LocalExecutor"

    @property
    def components(self) -> tuple[str, ...]:
        return (*COMPONENTS, *self.workers)


class AirflowStack:
    """Airflow's components as children of `processes`, on loopback, with one environment."""

    def __init__(self, config: StackConfig, processes: ProcessGroup) -> None:
        self.config = config
        self.processes = processes
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.url = f"http://127.0.0.1:{self.port}"
        config.home.mkdir(parents=True, exist_ok=True)
        self.env = self._environment()
        self.api = AirflowApi(self.url, ADMIN, self.password)

    def _environment(self) -> dict[str, str]:
        cfg = self.config
        passwords = cfg.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN: self.password}))
        metadata_url = cfg.metadata_url or f"sqlite:///{cfg.home / 'airflow.db'}"
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "RETURNS_SYNC", "_AIRFLOW"))
        }
        env = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": str(cfg.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self._dags_folder()),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": cfg.executor,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_RETURNS_SYNC_DB": cfg.state_conn,
        }
        if cfg.merchants_file is not None:
            env["RETURNS_SYNC_MERCHANTS"] = str(cfg.merchants_file)
        if cfg.broker_url:
            env |= {
                "AIRFLOW__CELERY__BROKER_URL": cfg.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(cfg.worker_concurrency),
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": cfg.queue,
            }
        return {**env, **cfg.connections, **cfg.settings}

    def _dags_folder(self) -> Path:
        """dags/ itself, or a folder in the home linking only the DAG files asked for."""
        if self.config.dag_files is None:
            return ROOT / "dags"
        folder = self.config.home / "dags"
        folder.mkdir(exist_ok=True)
        for name in self.config.dag_files:
            link = folder / name
            if not link.exists():
                link.symlink_to(ROOT / "dags" / name)
        return folder

    # ------------------------------------------------------------------ processes

    def run(self, argv: Sequence[str], log_name: str, timeout: float = 240) -> str:
        """Run one command to completion in the stack's environment; its output.

        On failure the error carries the end of the output (kept in `<home>/<log_name>.log`).
        """
        log = self.config.home / f"{log_name}.log"
        with log.open("wb") as out:
            proc = subprocess.run(
                list(argv),
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{tail(log, 60)}")
        return log.read_text()

    def airflow(self, *args: str, timeout: float = 240) -> str:
        """Run one `airflow` CLI command to completion (migrations)."""
        name = "cli-" + "-".join(args[:2])
        return self.run([sys.executable, "-m", "airflow", *args], name, timeout)

    def command(self, name: str) -> list[str]:
        """How component `name` is started (a Celery worker is named after itself)."""
        af = [sys.executable, "-m", "airflow"]
        if name in self.config.workers:
            worker = [*af, "celery", "worker", "--celery-hostname", f"{name}@%h"]
            worker += ["--queues", self.config.queue, "--skip-serve-logs"]
            return [*worker, "--without-gossip", "--without-mingle"]
        if name == "api-server":
            return [*af, name, "--host", "127.0.0.1", "--port", str(self.port)]
        if name in ("scheduler", "triggerer"):
            return [*af, name, "--skip-serve-logs"]
        return [*af, name]

    def start(self, *names: str) -> None:
        """Start components (default: every one in the config) that are not running."""
        running = {child.name for child in self.processes.children}
        for name in names or self.config.components:
            if name not in running:
                self.processes.start(name, self.command(name), self.env, ROOT)

    def stop(self, *names: str) -> None:
        """Stop components gracefully (SIGTERM, then SIGKILL); `start` brings them back."""
        for name in names:
            self.processes.stop(name)

    def kill(self, name: str) -> list[int]:
        """SIGKILL one component (`scheduler`, `worker1`, ...) with everything it started."""
        return self.processes.kill(name)

    def restart(self, name: str) -> None:
        """Start a killed component again, with the same command and environment."""
        self.processes.restart(name)

    def up(self, dag_ids: Iterable[str], timeout: float = 120) -> AirflowStack:
        """Migrate, start every component and wait until the DAGs can run (`timeout` a wait).

        Waits for a healthy API server (metadata database, scheduler, triggerer, DAG
        processor), logs in, creates the API pools, then waits until `dag_ids` are parsed
        and every Celery worker is ready.
        """
        wanted = tuple(dag_ids)
        self.airflow("db", "migrate")
        self.start()
        self.processes.wait_for("a healthy Airflow API server", self.healthy, timeout)
        self.api.login()
        for pool, slots in self.pool_sizes().items():
            self.api.create_pool(pool, slots, POOLS[pool])
        parsed = lambda: all(map(self.api.dag_known, wanted))  # noqa: E731
        self.processes.wait_for(f"DAGs {wanted} to be parsed", parsed, timeout)
        if self.config.workers:
            self.processes.wait_for("the Celery workers", self.workers_ready, timeout)
        return self

    def pool_sizes(self) -> dict[str, int]:
        """The API pools' slots as the compose init job and scripts/_env.sh size them
        (`deploy/pools.py`): `pool_slots` (RETURNS_SYNC_API_POOL_SLOTS) each, and `loop_api`
        at least three per merchant of the merchants file."""
        merchants = 1
        if self.config.merchants_file is not None:
            merchants = len(load_merchants(self.config.merchants_file).merchants)
        return expected_slots(merchants, self.config.pool_slots)

    def healthy(self) -> bool:
        """The API server answers and reports every part of Airflow healthy."""
        body = self.api.health()
        return body is not None and all(
            body.get(part, {}).get("status") == "healthy" for part in HEALTH_PARTS
        )

    # ------------------------------------------------------------------ DAG runs

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        body = self.api.call("GET", f"/dags/{dag_id}/dagRuns?limit=100")
        runs: list[dict[str, Any]] = body["dag_runs"]
        return runs

    def wait_idle(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        """Until no run of these DAGs is queued or running."""
        wanted = sorted(dag_ids)

        def idle() -> bool:
            return not {run["state"] for d in wanted for run in self.dag_runs(d)} & ACTIVE

        self.processes.wait_for(f"runs of {wanted} to finish", idle, timeout)

    # ------------------------------------------------------------------ Celery workers

    def workers_ready(self) -> bool:
        """Every running Celery worker announced `ready.` in its (current) log."""
        workers = [c for c in self.processes.children if c.name in self.config.workers]
        return len(workers) == len(self.config.workers) and all(
            " ready." in c.log_text() for c in workers
        )

    def workloads_per_worker(self) -> dict[str, int]:
        """How many task workloads each Celery worker executed (its logs, restarts included)."""
        counts = dict.fromkeys(self.config.workers, 0)
        for child in [*self.processes.retired, *self.processes.children]:
            if child.name in counts:
                counts[child.name] += child.log_text().count("Executing workload in Celery")
        return counts

    def worker_running(self, ti_id: str) -> str | None:
        """The Celery worker whose process tree runs task instance `ti_id` right now.

        The task process names itself `airflow worker -- <task instance id>` (Task SDK); it is
        a descendant of the worker that received the workload, in a process group of its own.
        """
        for child in self.processes.children:
            if child.name not in self.config.workers:
                continue
            for process in child.tree():
                try:
                    if ti_id in " ".join(process.cmdline()):
                        return child.name
                except psutil.Error:
                    continue
        return None


class AirflowApi:
    """A small client for Airflow's public REST API (`/api/v2`) with a bearer token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.username = username
        self.password = password
        self.session = requests.Session()

    def health(self) -> dict[str, Any] | None:
        """The API server's health report; None while it does not answer."""
        try:
            response = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        if response.status_code != 200:
            return None
        report: dict[str, Any] = response.json()
        return report

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


# --------------------------------------------------------------------------- the Celery topology


@dataclass
class RunningStack:
    """What the end-to-end tests drive and inspect."""

    api: AirflowApi
    stack: AirflowStack
    processes: ProcessGroup
    sandbox: dict[str, Any]  # the sandbox's URLs and credentials
    state_url: str
    started_in: float
    merchants: tuple[str, ...] = ()  # with a `MerchantSetup`: the merchant ids, in file order

    @property
    def home(self) -> Path:
        """AIRFLOW_HOME of every component (task logs under `logs/`)."""
        return self.stack.config.home

    def dag_id(self, base: str, merchant: str) -> str:
        """The DAG id of `base` for one merchant (`default` keeps the base id)."""
        return merchant_dag_id(base, merchant)


# Starts (or points at) the vendors: gets the process group and a work folder, returns the
# sandbox's URLs and credentials (the keys of the sandbox CLI's `--urls-file`).
SandboxStarter = Callable[[ProcessGroup, Path], dict[str, Any]]


def sandbox_process(
    seed: int = 42,
    returns: int = SEEDED_RETURNS,
    options: Sequence[str] = (),
    merchants: int | None = None,
) -> SandboxStarter:
    """The sandbox CLI as one more child process, with `returns` Loop returns seeded today
    (per merchant, with `merchants`: N shops `m01`..`mNN`, one Whiplash customer each).

    `options` go to the CLI as they are (e.g. `--strict`, `--token-ttl-seconds 20`).
    """

    def start(processes: ProcessGroup, workdir: Path) -> dict[str, Any]:
        urls_file = workdir / "sandbox-urls.json"
        argv = [sys.executable, "-m", "include.returns_sync.sandbox", "--seed", str(seed)]
        argv += ["--loop-port", "0", "--whiplash-port", "0", *options]  # any free ports
        if merchants is not None:
            argv += ["--merchants", str(merchants)]
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
    whiplash_extra: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
    merchants: MerchantSetup | None = None,
) -> Iterator[RunningStack]:
    """The compose topology, running, until the block ends; then nothing of it is left.

    Creates two PostgreSQL databases (Airflow metadata, our state store, the latter the way the
    compose init job does it) and claims a Redis database, starts the vendors
    (`start_sandbox`, by default `sandbox_process()`) and every Airflow component, and waits
    until the API answers, the DAGs are parsed and both workers are ready. `whiplash_extra`
    gives more `whiplash_default` extras from the sandbox's URLs file (e.g. its refresh token).
    `merchants` serves every merchant of the sandbox (started with `--merchants N`) from a
    merchants file, each on its own `loop_<id>` connection (`MerchantSetup`).
    Whatever happens, it
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
                # The sandbox enforces no rate limit here; a generous per-process throttle
                # keeps the hooks' rate limiter in the path without making the test wait on it.
                fast = {"rate_limit": 20}
                whiplash = {**fast, **(whiplash_extra(sandbox) if whiplash_extra else {})}
                connections = airflow_connections(sandbox, loop_extra=fast, whiplash_extra=whiplash)
                merchant_ids: tuple[str, ...] = ()
                merchants_file = None
                if merchants is not None:
                    merchants_file = workdir / "merchants.yaml"
                    merchant_ids = merchants.write_file(merchants_file, sandbox)
                    connections |= merchants.connections(sandbox, fast, whiplash)
                config = StackConfig(
                    home=workdir / "airflow",
                    state_conn=state_url,
                    connections=connections,
                    settings={**SETTINGS, **(settings or {})},
                    metadata_url=metadata.render_as_string(hide_password=False),
                    broker_url=redis_url(redis_db),
                    workers=WORKERS,
                    pool_slots=pool_slots,
                    merchants_file=merchants_file,
                )
                wanted = merchant_dag_ids(merchant_ids) if merchant_ids else DAG_IDS
                stack = AirflowStack(config, processes).up(wanted)
                yield RunningStack(
                    stack.api,
                    stack,
                    processes,
                    sandbox,
                    state_url,
                    time.monotonic() - started,
                    merchant_ids,
                )
            finally:  # before the broker database is flushed and the databases dropped
                processes.stop_all()
    finally:
        databases.drop_all()
    leftovers = processes.leftovers()
    assert not leftovers, f"processes left running after the test: {leftovers}"
    for role in ("meta", "state"):
        assert not databases.exists(role), f"database {databases.name(role)} was not dropped"


# --------------------------------------------------------------------------- many merchants


def merchant_dag_id(base: str, merchant: str) -> str:
    """`base` for the merchant `default`, else `<base>__<merchant>` (PRODUCT.md section 3.1)."""
    return base if merchant == "default" else f"{base}__{merchant}"


def merchant_dag_ids(merchants: Iterable[str]) -> tuple[str, ...]:
    """Every DAG id of these merchants (three per merchant)."""
    return tuple(merchant_dag_id(base, m) for m in merchants for base in DAG_IDS)


def loop_conn_id(merchant: str) -> str:
    """A merchant's Loop connection id, as the merchants file defaults it."""
    return "loop_default" if merchant == "default" else f"loop_{merchant}"


@dataclass(frozen=True)
class MerchantSetup:
    """Serve every merchant of a multi-merchant sandbox from one deployment.

    The sandbox's URLs file lists its merchants (`"merchants": {id: {loop_api_key,
    loop_webhook_secret, whiplash_customer_id}}`); each becomes an entry of the merchants file
    in the sandbox's one Whiplash account (`whiplash_default`, its own customer id) with its
    own `loop_<id>` connection. `revoked_loop`: merchants whose Loop connection carries a wrong
    API key (credentials revoked at Loop: every Loop call answers 401). `entries`: more keys
    for every entry (a cadence, say); `only`: serve just these merchants of the sandbox.
    """

    revoked_loop: frozenset[str] = frozenset()
    entries: Mapping[str, Any] = field(default_factory=dict)
    only: tuple[str, ...] | None = None

    def merchants(self, sandbox: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        served: dict[str, dict[str, Any]] = dict(sandbox["merchants"])
        if self.only is not None:
            served = {m: served[m] for m in self.only}
        return served

    def write_file(self, path: Path, sandbox: Mapping[str, Any]) -> tuple[str, ...]:
        """Write the merchants file; the merchant ids in file order."""
        served = self.merchants(sandbox)
        document = {
            "merchants": [
                {
                    "id": merchant,
                    "loop_conn_id": loop_conn_id(merchant),
                    "whiplash_conn_id": "whiplash_default",
                    "whiplash_customer_id": int(keys["whiplash_customer_id"]),
                    **self.entries,
                }
                for merchant, keys in served.items()
            ]
        }
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return tuple(served)

    def connections(
        self,
        sandbox: Mapping[str, Any],
        loop_extra: Mapping[str, Any] | None = None,
        whiplash_extra: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """`AIRFLOW_CONN_*`: one Loop connection per merchant, and `whiplash_default`."""
        return merchant_connections(
            sandbox, self.merchants(sandbox), loop_extra, whiplash_extra, self.revoked_loop
        )


def merchant_connections(
    sandbox: Mapping[str, Any],
    merchants: Mapping[str, Mapping[str, Any]],
    loop_extra: Mapping[str, Any] | None = None,
    whiplash_extra: Mapping[str, Any] | None = None,
    revoked_loop: Iterable[str] = (),
) -> dict[str, str]:
    """`loop_<id>` for each merchant (its shop's API key and webhook secret; a wrong key for
    the `revoked_loop` ones) and the shared `whiplash_default`, as `AIRFLOW_CONN_*` JSON."""
    revoked = set(revoked_loop)
    connections = {
        "AIRFLOW_CONN_WHIPLASH_DEFAULT": airflow_connections(
            sandbox, whiplash_extra=whiplash_extra
        )["AIRFLOW_CONN_WHIPLASH_DEFAULT"]
    }
    for merchant, keys in merchants.items():
        key = str(keys["loop_api_key"])
        loop = {
            "conn_type": "http",
            "host": sandbox["loop_url"],
            "password": f"revoked-{key}" if merchant in revoked else key,
            "extra": {"webhook_secret": keys["loop_webhook_secret"], **(loop_extra or {})},
        }
        connections[f"AIRFLOW_CONN_{loop_conn_id(merchant).upper()}"] = json.dumps(loop)
    return connections


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
