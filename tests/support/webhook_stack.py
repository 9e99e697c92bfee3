"""The webhook path through real Airflow: sandbox, LocalExecutor stack and state store, wired.

Used by the webhook end-to-end test and `bench/bench_webhook_latency.py`. Airflow itself comes
from `tests/support/airflow_stack.py` in its LocalExecutor topology, like `scripts/ui`: SQLite
metadata, api-server, scheduler, dag-processor and triggerer on 127.0.0.1, in a temporary home
with only the DAGs under test. What is specific to webhooks lives here: the sandbox runs in
this process (its deliveries and records stay inspectable), our endpoints are registered with
both simulators through the registration CLI, and polling is pushed a day away, so that what
happens after the DAGs' first scheduled runs is the webhooks' doing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from include.returns_sync.sandbox.connections import airflow_connections
from tests.support.airflow_stack import AirflowStack, StackConfig
from tests.support.processes import ProcessGroup

DAG_FILES = ("loop_returns_to_whiplash.py", "whiplash_receipts_to_loop.py")
RMA_DAG = "loop_returns_to_whiplash"
RECEIPTS_DAG = "whiplash_receipts_to_loop"


class WebhookPipeline:
    """The sandbox (in this process), Airflow (subprocesses) and the state store, wired for the
    webhook path: our endpoints registered with both simulators, polling pushed a day away so
    what happens is the webhooks' doing.

    `start()` returns once Airflow is healthy, the DAGs are parsed and their first scheduled
    runs have finished; `stop()` (or leaving the `with` block) stops everything. Under `home`:
    `airflow/` (AIRFLOW_HOME), `logs/` (one log per component), `reports/`, `state.db`.
    """

    def __init__(self, home: Path, *, seed: int = 0, extra_env: Mapping[str, str] | None = None):
        from include.returns_sync.sandbox import Sandbox

        self.home = home
        self.sandbox = Sandbox(seed=seed, strict=True)  # end-to-end: the harsher reading
        self.state_url = f"sqlite:///{home / 'state.db'}"
        self._extra_env = dict(extra_env or {})
        self.processes = ProcessGroup(home / "logs")
        self.stack: AirflowStack | None = None
        self.store: Any = None
        self._returns = 0

    def start(self, timeout: float = 150) -> WebhookPipeline:
        """Everything up; `timeout` bounds each wait (API healthy, DAGs parsed, first runs)."""
        from include.returns_sync.state import StateStore

        sandbox = self.sandbox.start()
        self.store = StateStore.from_url(self.state_url)
        self.store.migrate()
        pool_slots = int(os.environ.get("RETURNS_SYNC_API_POOL_SLOTS") or 2)
        settings = {
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "RETURNS_SYNC_REPORTS_DIR": str(self.home / "reports"),
            "RETURNS_SYNC_RMA_SCHEDULE_MINUTES": "1440",
            "RETURNS_SYNC_RECEIPTS_SCHEDULE_MINUTES": "1440",
            "RETURNS_SYNC_RETRY_DELAY_SECONDS": "2",
            "RETURNS_SYNC_RETRY_WAIT_SCALE": "0.05",
            # the API pools and the hooks' share of the vendor limits, as scripts/_env.sh sizes them
            "RETURNS_SYNC_API_POOL_SLOTS": str(pool_slots),
            **self._extra_env,
        }
        config = StackConfig(
            home=self.home / "airflow",
            # the state store URI is passed as written (Airflow's URI parser drops sqlite paths)
            state_conn=self.state_url,
            connections=airflow_connections(
                sandbox, loop_extra={"webhook_secret": sandbox.loop_webhook_secret}
            ),
            settings=settings,
            dag_files=DAG_FILES,
            pool_slots=pool_slots,
        )
        self.stack = AirflowStack(config, self.processes).up([RMA_DAG, RECEIPTS_DAG], timeout)
        self.stack.wait_idle([RMA_DAG, RECEIPTS_DAG], timeout)
        self.register()
        return self

    def register(self) -> str:
        """Our endpoints with both simulators, through the registration CLI."""
        assert self.stack is not None
        module = "include.returns_sync.webhooks.register"
        argv = [sys.executable, "-m", module, "--url", self.stack.url, "--allow-http"]
        return self.stack.run(argv, "register", timeout=60)

    def stop(self) -> None:
        try:
            self.processes.stop_all()
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
        what = f"the RMA of Loop return {return_id}"
        found = self.processes.wait_for(what, lambda: self.rmas(return_id), timeout, 0.05)
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

    def inbox_statuses(self, source: str | None = None) -> dict[str, int]:
        """Inbox events by status; only those of `source` (e.g. "loop") when given."""
        from sqlalchemy import func, select

        from include.returns_sync.state.schema import webhook_inbox as t

        query = select(t.c.status, func.count()).group_by(t.c.status)
        if source is not None:
            query = query.where(t.c.source == source)
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {status: count for status, count in rows}

    def wait_inbox_done(self, timeout: float) -> None:
        """Until every event in the inbox has been handled (status `done`)."""
        done = lambda: set(self.inbox_statuses()) == {"done"}  # noqa: E731
        self.processes.wait_for("every inbox event to be done", done, timeout)
