"""A real Airflow 3 (api-server, scheduler, dag-processor, triggerer) on 127.0.0.1, for tests.

Used by the webhook end-to-end test and `bench/bench_webhook_latency.py`. Like `scripts/ui`:
LocalExecutor, SQLite metadata, our DAGs and plugin, everything bound to loopback; unlike it,
in a temporary AIRFLOW_HOME with only the DAGs under test, connections given as environment
variables, and every process started in its own process group so `stop()` ends it and all its
children (task workers, uvicorn workers), whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
POOLS = {
    "loop_api": {"slots": 2, "description": "Loop API: 300 requests/min per key"},
    "whiplash_api": {"slots": 2, "description": "Whiplash API: 10 requests/s per account"},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (requests.RequestException, OSError, ValueError, KeyError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})"
    )


class AirflowStack:
    """Airflow processes in `home`; a context manager that always stops what it started."""

    def __init__(
        self,
        home: Path,
        *,
        dag_files: Iterable[str],
        connections: Mapping[str, Mapping[str, Any]],
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        dags = home / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        for name in dag_files:
            link = dags / name
            if not link.exists():
                link.symlink_to(ROOT / "dags" / name)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "RETURNS_SYNC_"))
        }
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "RETURNS_SYNC_REPORTS_DIR": str(home / "reports"),
            }
        )
        for conn_id, fields in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(dict(fields))
        env.update(extra_env or {})
        self.env = env
        self._token: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def airflow(self, *args: str, timeout: float = 120) -> str:
        """Run one `airflow` CLI command in this home; its output, or an error with the log."""
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def prepare(self) -> None:
        """A fresh metadata database and the pools our tasks run in."""
        self.airflow("db", "migrate")
        pools = self.home / "pools.json"
        pools.write_text(json.dumps(POOLS))
        self.airflow("pools", "import", str(pools))

    def start(self, *components: str) -> None:
        """Start components (default: all four), each in its own process group."""
        for name in components or COMPONENTS:
            if name in self._procs and self._procs[name].poll() is None:
                continue
            args = [name]
            if name == "api-server":
                args += ["--host", "127.0.0.1", "--port", str(self.port)]
            if name in ("scheduler", "triggerer"):
                args.append("--skip-serve-logs")
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
            self._procs[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def stop(self, *components: str, timeout: float = 20) -> None:
        """Stop components (default: all) and every process they started."""
        names = [n for n in (components or list(self._procs)) if n in self._procs]
        for name in names:
            _signal_group(self._procs[name], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            proc = self._procs.pop(name)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)  # stragglers in the group (task workers)
            if proc.poll() is None:
                proc.wait(5)

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def crashed(self) -> list[str]:
        return [name for name, proc in self._procs.items() if proc.poll() is not None]

    def logs(self, tail: int = 40) -> str:
        """The last lines of every component's log (for a failing test's message)."""
        parts = []
        for path in sorted(self.home.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    # ------------------------------------------------------------------ REST API

    def wait_healthy(self, timeout: float = 120) -> None:
        def healthy() -> bool:
            if self.crashed():
                raise RuntimeError(f"Airflow components exited: {self.crashed()}\n{self.logs()}")
            body = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
            wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all(
                body.get(part, {}).get("status") == "healthy"
                for part in wanted
                if part == "metadatabase" or part.replace("_", "-") in self._procs
            )

        wait_for(healthy, timeout, "a healthy Airflow API server and components")

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to Airflow's public REST API (`/api/v2/...`) as the local admin."""
        if self._token is None:
            self._token = requests.get(f"{self.url}/auth/token", timeout=10).json()["access_token"]
        response = requests.request(
            method,
            f"{self.url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=30,
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api(
            "GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100}
        )["dag_runs"]
        return runs

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        wanted = set(dag_ids)

        def parsed() -> bool:
            dags = self.api("GET", "/dags", params={"limit": 100})["dags"]
            return wanted <= {d["dag_id"] for d in dags if not d.get("is_paused")}

        wait_for(parsed, timeout, f"DAGs {sorted(wanted)} to be parsed and unpaused")

    def wait_idle(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        """Until no run of these DAGs is queued or running."""

        def idle() -> bool:
            states = {r["state"] for d in dag_ids for r in self.dag_runs(d)}
            return not states & {"queued", "running"}

        wait_for(idle, timeout, f"runs of {sorted(dag_ids)} to finish", interval=0.5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the group this test started (start_new_session=True)


# --------------------------------------------------------------------------- the webhook path

DAG_FILES = ("loop_returns_to_whiplash.py", "whiplash_receipts_to_loop.py")
RMA_DAG = "loop_returns_to_whiplash"
RECEIPTS_DAG = "whiplash_receipts_to_loop"


class WebhookPipeline:
    """The sandbox (in this process), Airflow (subprocesses) and the state store, wired for the
    webhook path: our endpoints registered with both simulators, polling pushed a day away so
    what happens is the webhooks' doing.

    `start()` returns once Airflow is healthy, the DAGs are parsed and their first scheduled
    runs have finished; `stop()` (or leaving the `with` block) stops everything.
    """

    def __init__(self, home: Path, *, seed: int = 0, extra_env: Mapping[str, str] | None = None):
        from include.returns_sync.sandbox import Sandbox

        self.home = home
        self.sandbox = Sandbox(seed=seed)
        self.state_url = f"sqlite:///{home / 'state.db'}"
        self._extra_env = dict(extra_env or {})
        self.stack: AirflowStack | None = None
        self.store: Any = None
        self._returns = 0

    def start(self, timeout: float = 150) -> WebhookPipeline:
        from include.returns_sync.state import StateStore

        deadline = time.monotonic() + timeout
        sandbox = self.sandbox.start()
        self.store = StateStore.from_url(self.state_url)
        self.store.migrate()
        connections = {
            "loop_default": {
                "conn_type": "http",
                "host": sandbox.loop_url,
                "password": sandbox.loop_api_key,
                "extra": {"webhook_secret": sandbox.loop_webhook_secret},
            },
            "whiplash_default": {
                "conn_type": "http",
                "host": sandbox.whiplash_url,
                "login": sandbox.whiplash_client_id,
                "password": sandbox.whiplash_client_secret,
            },
        }
        env = {
            # the state store URI is passed as written (Airflow's URI parser drops sqlite paths)
            "AIRFLOW_CONN_RETURNS_SYNC_DB": self.state_url,
            "RETURNS_SYNC_RMA_SCHEDULE_MINUTES": "1440",
            "RETURNS_SYNC_RECEIPTS_SCHEDULE_MINUTES": "1440",
            "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
            "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.05",
            **self._extra_env,
        }
        self.stack = AirflowStack(
            self.home, dag_files=DAG_FILES, connections=connections, extra_env=env
        )
        self.stack.prepare()
        self.stack.start()
        left = lambda: max(5.0, deadline - time.monotonic())  # noqa: E731
        self.stack.wait_healthy(left())
        self.stack.wait_for_dags([RMA_DAG, RECEIPTS_DAG], left())
        self.stack.wait_idle([RMA_DAG, RECEIPTS_DAG], left())
        self.register()
        return self

    def register(self) -> str:
        """Our endpoints with both simulators, through the registration CLI."""
        assert self.stack is not None
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "include.returns_sync.webhooks.register",
                "--url",
                self.stack.url,
                "--allow-http",
            ],
            env=self.stack.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"registration failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def stop(self) -> None:
        try:
            if self.stack is not None:
                self.stack.stop()
        finally:
            self.sandbox.stop()
            if self.store is not None:
                self.store.dispose()

    def __enter__(self) -> WebhookPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ scenario steps

    def new_return(self, units: int = 1) -> str:
        """An open Loop return without a label yet, mappable to its Whiplash order and items."""
        self._returns += 1
        n = self._returns
        sku = f"E2E-{n:04d}"
        provider_order_id = 7_000_000_000 + n
        self.sandbox.whiplash.add_item(sku, f"Canvas Tote {n}", "20.00")
        self.sandbox.whiplash.add_order(str(provider_order_id), f"#E2E{n}", [(sku, units)])
        record = self.sandbox.loop.add_return(
            order_name=f"#E2E{n}",
            provider_order_id=provider_order_id,
            items=[(sku, units)],
            label_status=None,
            titles={sku: f"Canvas Tote {n}"},
            prices={sku: "20.00"},
        )
        return str(record["id"])

    def rmas(self, return_id: str) -> list[dict[str, Any]]:
        return [
            cr
            for cr in self.sandbox.whiplash.consumer_returns()
            if str((cr.get("originator") or {}).get("original_id")) == return_id
        ]

    def wait_rma(self, return_id: str, timeout: float = 60) -> dict[str, Any]:
        found: list[dict[str, Any]] = wait_for(
            lambda: self.rmas(return_id), timeout, f"the RMA of Loop return {return_id}", 0.05
        )
        return found[0]

    def received_at(self, source: str, resource_id: str) -> Any:
        """When our endpoint stored the first webhook for this resource (the inbox clock)."""
        from sqlalchemy import select

        from include.returns_sync.state.schema import webhook_inbox as t

        with self.store.engine.connect() as conn:
            return conn.execute(
                select(t.c.received_at)
                .where(t.c.source == source, t.c.resource_id == resource_id)
                .order_by(t.c.id)
                .limit(1)
            ).scalar_one()

    def rma_latency(self, return_id: str) -> float:
        """Seconds from our endpoint storing the label webhook to the RMA existing in Whiplash."""
        from datetime import datetime

        created = datetime.fromisoformat(self.wait_rma(return_id)["created_at"])
        return (created - self.received_at("loop", return_id)).total_seconds()

    def inbox_statuses(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from include.returns_sync.state.schema import webhook_inbox as t

        with self.store.engine.connect() as conn:
            rows = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
        return {status: count for status, count in rows}
