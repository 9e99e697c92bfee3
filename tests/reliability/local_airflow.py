"""A real Airflow on this machine for the restart test: LocalExecutor, PostgreSQL metadata.

`LocalAirflow` runs the process set of `scripts/ui` (api-server, scheduler, dag-processor,
triggerer) on a temporary AIRFLOW_HOME, bound to 127.0.0.1 on ports chosen at run time, each
component in a process group of its own so that killing one reaches its children (the
scheduler's executor workers, their task supervisors and task processes). `Databases` creates
the PostgreSQL databases the stack needs and drops them again, whatever happened.
`AirflowApi` drives the stack through the public REST API, as an operator's script would.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2
import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_DSN = os.environ.get("RETURNS_SYNC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class Databases:
    """Fresh PostgreSQL databases named after this run; `drop_all` removes every one made."""

    def __init__(self, admin_dsn: str = PG_ADMIN_DSN) -> None:
        self.admin_dsn = admin_dsn
        self.prefix = f"rs_restart_{uuid.uuid4().hex[:10]}"
        self.created: list[str] = []

    def _sql(self, statement: str, *args: str) -> Any:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        with contextlib.closing(psycopg2.connect(self.admin_dsn, connect_timeout=5)) as conn:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(statement, args or None)
                return cursor.fetchone() if cursor.description else None

    def create(self, role: str) -> str:
        """Create `<prefix>_<role>` and return its SQLAlchemy URL (psycopg2 driver)."""
        name = f"{self.prefix}_{role}"
        self._sql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://")
        return f"{base}/{name}"

    def exists(self, name: str) -> bool:
        return self._sql("SELECT 1 FROM pg_database WHERE datname = %s", name) is not None

    def drop_all(self) -> None:
        for name in reversed(self.created):
            self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Component:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class LocalAirflow:
    """The Airflow components of `scripts/ui`, with LocalExecutor, started and killed at will."""

    def __init__(
        self, home: Path, metadata_url: str, extra_env: Mapping[str, str], parallelism: int = 4
    ) -> None:
        self.home = home
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.components: dict[str, Component] = {}
        self.stopped: list[Component] = []
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(f'{{"admin": "{self.password}"}}')
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "RETURNS_SYNC", "_AIRFLOW"))
        }
        self.env = {
            **inherited,
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # Only the runs the test triggers, none from schedules or asset events.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra_env,
        }

    # ------------------------------------------------------------------ processes

    def migrate(self) -> None:
        log = self.home / "db-migrate.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
        assert done.returncode == 0, log.read_text(errors="replace")[-3000:]

    def start(self, name: str) -> Component:
        """Start one component (again): a fresh process group, its log appended to."""
        argv = [sys.executable, "-m", "airflow", name]
        if name == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        elif name in ("scheduler", "triggerer"):
            argv.append("--skip-serve-logs")
        log = self.home / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.components[name] = Component(name, popen, log)
        return self.components[name]

    def start_all(self) -> None:
        for name in COMPONENTS:
            self.start(name)

    def processes_of(self, name: str) -> list[psutil.Process]:
        """The component's process and every descendant (executor workers, task processes)."""
        try:
            root = psutil.Process(self.components[name].popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def processes_running(self, ti_id: str) -> list[psutil.Process]:
        """The scheduler's descendants working on one task instance: the executor worker and
        the task process both carry the task instance's id in their process title."""
        found = []
        for process in self.processes_of("scheduler")[1:]:
            try:
                if ti_id in " ".join(process.cmdline()):
                    found.append(process)
            except psutil.Error:
                continue
        return found

    def kill(self, name: str) -> None:
        """SIGKILL the component's whole process group: no chance to clean up or hand over."""
        members = self.processes_of(name)
        component = self.components.pop(name)
        self.stopped.append(component)
        for process in members:
            try:
                process.kill()
            except psutil.Error:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(component.popen.pid, signal.SIGKILL)
        component.popen.wait(10)

    def stop_all(self) -> list[int]:
        """Stop every component (TERM, then KILL); returns pids that are still alive."""
        everything = list(self.components.values())
        members = [p for c in everything if c.alive() for p in self.processes_of(c.name)]
        for component in everything:
            if component.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(component.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for component in everything:
            with contextlib.suppress(subprocess.TimeoutExpired):
                component.popen.wait(max(0.1, deadline - time.monotonic()))
        for component in [*everything, *self.stopped]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(component.popen.pid, signal.SIGKILL)
        for process in members:
            try:
                process.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(members, timeout=10)
        self.stopped += everything
        self.components.clear()
        return [p.pid for p in members if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def assert_running(self) -> None:
        for component in self.components.values():
            assert component.alive(), f"{component.name} died:\n{component.tail()}"

    def logs(self) -> str:
        return "\n\n".join(
            f"--- {c.name}\n{c.tail(40)}" for c in [*self.components.values(), *self.stopped]
        )


class AirflowApi:
    """Airflow's public REST API (`/api/v2`) with a token from the simple auth manager."""

    def __init__(self, airflow: LocalAirflow) -> None:
        self.base_url = airflow.base_url
        self.password = airflow.password
        self.session = requests.Session()

    def healthy(self) -> bool:
        try:
            answer = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def login(self) -> None:
        answer = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": "admin", "password": self.password},
            timeout=30,
        )
        assert answer.status_code in (200, 201), answer.text
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        answer = self.session.request(
            method, f"{self.base_url}/api/v2{path}", json=body, timeout=30
        )
        assert answer.status_code in ok, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def knows(self, dag_id: str) -> bool:
        try:
            answer = self.session.get(f"{self.base_url}/api/v2/dags/{dag_id}", timeout=10)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        body = {"logical_date": datetime.now(UTC).isoformat(), "conf": dict(conf or {})}
        run_id: str = self.call("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"]
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str:
        try:
            state: str = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        except (requests.RequestException, AssertionError):
            return "unknown"  # the api-server is busy or restarting: ask again
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=200"
        instances: list[dict[str, Any]] = self.call("GET", path)["task_instances"]
        return instances
